"""Execute every notebook in ``notebooks/`` on a small cohort; fail if any cell raises.

The notebooks read their cohort size from ``VPOP_NOTEBOOK_N`` (default 1,000); here it is 40. The
kernel is ipykernel's built-in ``python3`` kernel, which jupyter_client launches with the running
interpreter (``sys.executable``), so a venv with ``pip install -e .[test]`` needs no kernel
registration. The test checks that the kernel really runs in this environment.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
SMALL_N = "40"
CELL_TIMEOUT_S = 300
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # colour codes in kernel tracebacks

# Prepended to the in-memory copy of each notebook: the kernel must be this environment's Python.
_PROBE = "import os, sys\nprint(sys.prefix)\nprint(os.environ.get('VPOP_NOTEBOOK_N'))"


def test_notebooks_found():
    assert NOTEBOOKS, f"no notebooks in {NOTEBOOK_DIR}"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes(path: Path, monkeypatch):
    # The kernel process inherits os.environ at start-up.
    monkeypatch.setenv("VPOP_NOTEBOOK_N", SMALL_N)
    monkeypatch.setenv("MPLBACKEND", "Agg")

    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(_PROBE, id="vpop-test-probe"))
    client = nbclient.NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},  # cwd of the kernel
    )
    error = None
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as e:
        error = _ANSI.sub("", str(e))
    if error is not None:
        pytest.fail(f"{path.name}: a cell raised\n{error}", pytrace=False)

    probe = "".join(o.get("text", "") for o in nb.cells[0].outputs if o.output_type == "stream").splitlines()
    assert probe[:2] == [sys.prefix, SMALL_N], (
        f"the python3 kernel ran in {probe[:1]} with VPOP_NOTEBOOK_N={probe[1:2]}, expected {sys.prefix} "
        f"and {SMALL_N}; a user-level python3 kernelspec may shadow this environment's "
        "(see `jupyter kernelspec list`)"
    )
