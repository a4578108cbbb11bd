"""The notebooks run top to bottom headless (nbclient), bounded in time: the live one
against a simulated feed it starts itself, the replay one on the recorded sessions.
Committed notebooks carry no outputs."""

import json
import uuid
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def _execute(name: str, timeout: int):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return nb


def _outputs(nb) -> list:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]


def _text(nb) -> str:
    return "".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
                   for o in _outputs(nb))


def test_committed_notebooks_have_no_outputs():
    paths = sorted(NOTEBOOKS.glob("*.ipynb"))
    assert {p.name for p in paths} >= {"live_books.ipynb", "replay_benchmark.ipynb"}
    for p in paths:
        nb = json.loads(p.read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [] and cell["execution_count"] is None, (
                    f"{p.name} was committed with outputs: clear them (e.g. nbstripout)")


def test_live_books_notebook_runs_against_a_simulated_feed(monkeypatch, shm_dir):
    monkeypatch.setenv("HFTBOOK_SHM_NAME", f"nb-{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("HFTBOOK_NOTEBOOK_SECONDS", "6")
    monkeypatch.setenv("HFTBOOK_NOTEBOOK_FEED_SECONDS", "300")  # never outlives a failure
    nb = _execute("live_books.ipynb", timeout=300)
    text = _text(nb)
    assert "(started by this notebook)" in text
    assert "frames drawn, 0 errors; writer: running" in text
    assert "feed stopped" in text and "state='closed'" in text
    widgets = [o for o in _outputs(nb)
               if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert widgets, "the view is displayed as widgets"
    assert not list(Path(shm_dir).iterdir()), "the feed it started unlinked its segment"


def test_replay_benchmark_notebook_runs(monkeypatch):
    from connectors.recorded_paths import default_recordings

    if not default_recordings().exists():
        pytest.skip(f"no recorded sessions at {default_recordings()}")
    monkeypatch.setenv("HFTBOOK_NOTEBOOK_QUICK", "1")
    nb = _execute("replay_benchmark.ipynb", timeout=600)
    text = _text(nb)
    assert "BINANCE_FUTURES" in text and "M lv/s" in text
    images = [o for o in _outputs(nb) if "image/png" in o.get("data", {})]
    assert len(images) == 2, "latency histograms and throughput charts"
