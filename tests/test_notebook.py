"""The Colab notebook runs headless, every cell, at a smoke-test budget on the shared data."""

import os

import pytest

from tests.conftest import REPO

NOTEBOOK = REPO / "notebooks" / "deligan_quickstart.ipynb"


def test_quickstart_notebook_runs(tmp_path, mnist_dir, monkeypatch):
  nbformat = pytest.importorskip("nbformat")
  nbclient = pytest.importorskip("nbclient")
  monkeypatch.setenv("DELIGAN_NB_TINY", "1")
  monkeypatch.setenv("DELIGAN_NB_RUNS", str(tmp_path))
  monkeypatch.setenv("DELIGAN_DATA_DIR", os.path.dirname(mnist_dir))
  monkeypatch.setenv("PYTHONPATH", str(REPO))
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                          resources={"metadata": {"path": str(REPO)}}).execute()

  outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
  assert not [o for o in outputs if o.output_type == "error"]
  images = [o for o in outputs if "image/png" in o.get("data", {})]
  assert len(images) == 5  # toy samples and components; MNIST samples, losses, components
  for run in ("toy_deligan", "mnist_deligan"):
    assert (tmp_path / run / "samples.png").exists()
    assert (tmp_path / run / "components.png").exists()
    assert (tmp_path / run / "checkpoints").is_dir()
  printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
  assert "mean of the means: [" in printed
  # Section 4: the prior in a user's vmapped G, in a KL term, and a loaded run's gradients.
  assert "loss per seed: [" in printed and "KL term: " in printed
  assert "eps of this sampler: uniform" in printed
  assert "gradient shapes: {'mu': (50, 2), 'sigma': (50, 2)}" in printed
