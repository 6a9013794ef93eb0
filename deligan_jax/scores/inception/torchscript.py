"""Reads the tensors of a TorchScript archive into numpy, without torch.

A TorchScript file (``torch.jit.save``) is a zip holding ``<root>/data.pkl``, a
pickle of the module tree whose tensors point (by pickle persistent ids) at raw
little-endian storages ``<root>/data/<key>``, and ``<root>/code/``, the
TorchScript source of each module's ``forward``. Unpickling it here rebuilds
each scripted module as a plain dict of its attributes (sub-modules, tensors
as numpy arrays, ints and lists) and never imports torch.
"""

from __future__ import annotations

import collections
import pickle
import zipfile
from typing import Any

import numpy as np

_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class ScriptModule(dict):
  """A scripted module's attributes; ``type_name`` is its TorchScript class."""
  type_name = ""

  def __setstate__(self, state: dict) -> None:
    self.update(state)


class _StorageType:
  def __init__(self, name: str):
    self.dtype = np.dtype(_STORAGE_DTYPES[name]).newbyteorder("<")


def _rebuild_tensor(storage, offset, shape, strides, *unused):
  """``torch._utils._rebuild_tensor_v2``: a strided view of a storage, copied out."""
  itemsize = storage.itemsize
  view = np.lib.stride_tricks.as_strided(storage[offset:], shape,
                                         tuple(s * itemsize for s in strides))
  return np.array(view, dtype=storage.dtype.newbyteorder("="))


class _Unpickler(pickle.Unpickler):
  def __init__(self, archive: zipfile.ZipFile, root: str):
    super().__init__(archive.open(f"{root}/data.pkl"))
    self._archive, self._root, self._storages = archive, root, {}

  def find_class(self, module: str, name: str) -> Any:
    if module.startswith("__torch__"):
      return type(name, (ScriptModule,), {"type_name": f"{module}.{name}"})
    if module == "torch" and name in _STORAGE_DTYPES:
      return _StorageType(name)
    if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
      return _rebuild_tensor
    if (module, name) == ("torch.jit._pickle", "build_intlist"):
      return list
    if (module, name) == ("collections", "OrderedDict"):
      return collections.OrderedDict
    raise pickle.UnpicklingError(f"unexpected global {module}.{name} in a TorchScript archive")

  def persistent_load(self, pid):
    kind, storage_type, key, _, _ = pid
    if kind != "storage":
      raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
    if key not in self._storages:
      raw = self._archive.read(f"{self._root}/data/{key}")
      self._storages[key] = np.frombuffer(raw, dtype=storage_type.dtype)
    return self._storages[key]


def read(path_or_file) -> ScriptModule:
  """The module tree of a TorchScript archive (a path or a binary file object)."""
  with zipfile.ZipFile(path_or_file) as archive:
    pickles = [name for name in archive.namelist() if name.endswith("/data.pkl")]
    if len(pickles) != 1:
      raise ValueError(f"{path_or_file} is not a TorchScript archive (no single data.pkl)")
    return _Unpickler(archive, pickles[0].rsplit("/", 1)[0]).load()
