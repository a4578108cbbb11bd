"""`hftbook run` serving its books in named shared memory (config [shm], --shm-name).

The feed's store is created in the segment (Feed's store_factory); once the writer
runs, the segment is marked ready and a heartbeat thread bumps it while the writer
thread(s) live; on a clean stop it is marked closed and unlinked."""

from __future__ import annotations

from engine import shm


def store_factory(cfg: dict):
    """The Feed store factory for this config, or None when [shm] is disabled.  Checks
    first that no running writer holds the name (a clear error before anything starts)."""
    sc = cfg["shm"]
    if not sc["enabled"]:
        return None
    shm.check_name_free(sc["name"])

    def factory(n_books: int, depth: int) -> shm.SharedStore:
        return shm.create(sc["name"], n_books, depth)

    return factory


def publish(feed, cfg: dict) -> shm.SharedStore | None:
    """Mark the segment ready and start its heartbeat (call once the writer runs)."""
    store = feed.store
    if not isinstance(store, shm.SharedStore):
        return None

    store.ready()
    store.start_heartbeat(cfg["shm"]["heartbeat"], alive=lambda: feed.engine_alive,
                          progress=feed.engine_loops)
    return store


def close(feed) -> None:
    """Clean stop: readers see 'closed' and the name is freed."""
    store = getattr(feed, "store", None)
    if isinstance(store, shm.SharedStore):
        store.close()


def describe(feed) -> dict | None:
    store = getattr(feed, "store", None)
    if isinstance(store, shm.SharedStore):
        return {"name": store.shm_name, "path": str(store.path)}
    return None
