"""tensorflow-datasets imported without TensorFlow's C++ start-up notes on the user's screen.

TensorFlow logs from C++ straight to file descriptor 2 as it is imported: absl's "All log
messages before absl::InitializeLog() ..." and oneDNN's "custom operations are on" (on CPUs
where oneDNN is on by default, such as those with AVX-512, or wherever
TF_ENABLE_ONEDNN_OPTS=1). ``TF_CPP_MIN_LOG_LEVEL`` quiets TensorFlow's later C++ notes but
not these, which TensorFlow 2.21 writes before it reads that variable, so while
TensorFlow is imported its stderr is held back and only the notes (INFO and WARNING lines,
absl's note) are dropped. A user who sets ``TF_CPP_MIN_LOG_LEVEL`` sees what they asked for.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from types import ModuleType

LOG_LEVEL_ENV = "TF_CPP_MIN_LOG_LEVEL"
ERRORS_ONLY = "2"  # TensorFlow's level that shows errors but not INFO or WARNING lines

# An absl/glog INFO or WARNING line ("I0000 00:00:1796433855.799575   12014 port.cc:153] ..."),
# the line cpu_feature_guard's note continues on, and absl's note before its log is set up.
_NOTE = re.compile(r"[IW]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [^ \]]+:\d+\] "
                   r"|To enable the following instructions: "
                   r"|WARNING: All log messages before absl::InitializeLog\(\) is called")


def import_tfds() -> ModuleType:
  """``tensorflow_datasets``, with TensorFlow imported first; ImportError as ``import`` raises.

  Without a user's ``TF_CPP_MIN_LOG_LEVEL``, sets it to show errors only and drops the
  start-up notes that TensorFlow writes while it is imported.
  """
  if LOG_LEVEL_ENV in os.environ or "tensorflow" in sys.modules:
    import tensorflow  # noqa: F401  # tfds needs it to build and read datasets.
    import tensorflow_datasets
    return tensorflow_datasets
  os.environ[LOG_LEVEL_ENV] = ERRORS_ONLY
  with _stderr_without_notes():
    import tensorflow  # noqa: F401,F811
    import tensorflow_datasets  # noqa: F811
  return tensorflow_datasets


class _stderr_without_notes:
  """Holds back what is written to file descriptor 2, and passes on all but the notes."""

  def __enter__(self) -> None:
    sys.stderr.flush()
    self._held = tempfile.TemporaryFile()
    self._stderr = os.dup(2)
    os.dup2(self._held.fileno(), 2)

  def __exit__(self, *_) -> None:
    sys.stderr.flush()
    os.dup2(self._stderr, 2)
    os.close(self._stderr)
    self._held.seek(0)
    lines = self._held.read().decode(errors="replace").splitlines(keepends=True)
    self._held.close()
    sys.stderr.write("".join(line for line in lines if not _NOTE.match(line)))
    sys.stderr.flush()
