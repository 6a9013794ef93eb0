"""docs/mixture.md's examples run as printed (the loaded-run one on a freshly trained toy run)."""

import re

import numpy as np

from deligan_jax import training
from tests.conftest import REPO, small_config


def test_mixture_doc_examples_run(tmp_path, capsys):
  blocks = re.findall(r"```python\n(.*?)```", (REPO / "docs" / "mixture.md").read_text(), re.S)
  assert len(blocks) == 3
  training.train_and_evaluate(small_config("toy", "bimodal,deligan"), str(tmp_path))
  namespaces = []
  for block in blocks:
    namespaces.append({"workdir": str(tmp_path)})
    exec(compile(block, "docs/mixture.md", "exec"), namespaces[-1])
  printed = capsys.readouterr().out
  # Conditional G: every seed learned (its loss is 0.48 to 0.69 at the first step).
  assert np.all(np.asarray(namespaces[0]["values"]) < 0.1), namespaces[0]["values"]
  # VAE prior: the weights moved from uniform (0.1 each) towards the posteriors' 3:1 split.
  weights = np.exp(np.asarray(namespaces[1]["mixture"].log_weights(namespaces[1]["prior"])))
  assert weights.max() > 0.2, weights
  # The loaded run: its training eps, and gradients of the mixture's shape.
  assert "eps of this sampler: uniform" in printed
  assert "{'mu': (8, 2), 'sigma': (8, 2)}" in printed
