"""hftbook: ``hftbook.attach(name)`` maps a running feed's books read-only from any
process (see engine.shm); the rest of the package is the command line."""


def __getattr__(name: str):
    if name == "attach":  # lazy: the command line should not pay for numba on import
        from engine.shm import attach

        return attach
    raise AttributeError(f"module 'hftbook' has no attribute {name!r}")
