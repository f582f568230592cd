"""Every notebook runs from its own folder and shows its figures.

nbmake only checks that cells raise nothing; a notebook whose plots never
display (a backend forced to Agg, a Figure nobody returns) passes it. Here each
notebook is executed in a fresh Jupyter kernel and must hold image outputs, and
no cell may write a warning or an error to standard error.
"""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
# the figures each notebook draws (at least): a cell that stops showing its plot fails here
MIN_IMAGES = {"01-round-trips": 2, "02-saturation": 2, "03-partitions": 1, "04-what-if": 1}


def execute(path: Path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")

    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    return notebook


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_shows_its_figures(path):
    notebook = execute(path)
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= MIN_IMAGES[path.stem], f"{path.name}: {len(images)} image(s)"
    # a bare "<Figure size ...>" text means a figure was returned but not drawn
    texts = ["".join(o.get("data", {}).get("text/plain", "")) for o in outputs if "image/png" not in o.get("data", {})]
    assert not [t for t in texts if t.startswith("<Figure size")], path.name
    stderr = "".join(o.get("text", "") for o in outputs if o.get("name") == "stderr")
    assert "Warning" not in stderr and "Error" not in stderr, stderr
    if path.stem == "01-round-trips":  # a Result shows as its HTML table, not a dump of its config
        html = ["".join(o["data"]["text/html"]) for o in outputs if "text/html" in o.get("data", {})]
        assert any("sim.Result" in h and "what limits it" in h for h in html), "no Result table"
    if path.stem == "04-what-if":  # its grid runs through parallel_map: the bar must show in Jupyter
        widgets = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
        assert widgets or "100%" in stderr, "no progress bar in the notebook"


def test_importing_sim_leaves_the_backend_alone():
    """Importing sim and drawing a figure must not switch the user's backend."""
    import subprocess
    import sys

    code = (
        "import matplotlib; before = matplotlib.get_backend()\n"
        "import sim, sim.plotting, sim.scenarios.headline as h\n"
        "import pandas as pd\n"
        "fig = h.plot(pd.DataFrame({'mode': ['sync', 'nonblocking'], 'throughput_msgs_per_s': [30.0, 22000.0],"
        " 'article_msgs_per_s': [30.0, 22000.0]}))\n"
        "fig._repr_png_()\n"
        "import matplotlib.pyplot as plt\n"
        "assert matplotlib.get_backend() == before == 'module://test_backend', (before, matplotlib.get_backend())\n"
        "assert plt.get_fignums() == [], plt.get_fignums()  # files are drawn outside pyplot\n"
    )
    backend = Path(__file__).resolve().parent / "_backend"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**__import__("os").environ, "MPLBACKEND": "module://test_backend",
                               "PYTHONPATH": str(backend)})
    assert proc.returncode == 0, proc.stderr
