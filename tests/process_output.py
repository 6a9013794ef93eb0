"""The project's own lines of a command's output, without other libraries' log lines.

Libraries log to stderr on their own, and what they log depends on the machine: TensorFlow
notes oneDNN on CPUs with AVX-512 (and absl that its log is not set up yet), JAX notes a GPU
it cannot use, XLA notes CPU features. Tests that judge a command's output judge what the
project wrote: its own log lines (absl's format names the file that logged), its messages,
progress bars and tracebacks.
"""

from __future__ import annotations

import re

from tests.conftest import REPO

# Files whose log lines are the project's: absl names only the file, not its folder.
# (Less __init__.py, which the project does not log from and libraries do.)
OWN_FILES = (frozenset(path.name for folder in ("deligan_jax", "benchmarks", "tests")
                       for path in (REPO / folder).rglob("*.py"))
             | {"train.py", "eval.py"}) - {"__init__.py"}

# absl's and glog's line ("W1205 01:21:21.865198 140557099903872 datasets.py:47] ..."), and
# absl's C++ note before its log is set up.
_LOG_LINE = re.compile(r"[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ (?P<file>[^ \]]+):\d+\] ")
_ABSL_NOTE = "WARNING: All log messages before absl::InitializeLog() is called"
# A library's Python warning ("…/site-packages/x.py:12: UserWarning: …"), then its source line.
_LIBRARY_WARNING = re.compile(r"\S*(site|dist)-packages/\S+\.py:\d+: \w*Warning: ")
# Lines that continue a library's note ("To enable the following instructions: AVX2 ...").
_CONTINUED = ("To enable the following instructions: ",)


def own_lines(text: str) -> list[str]:
  """``text``'s lines less other libraries' log lines and warnings."""
  return split_lines(text)[0]


def split_lines(text: str) -> tuple[list[str], list[str]]:
  """``text``'s lines as (the project's, other libraries' log lines and warnings)."""
  own, foreign, after_library_warning = [], [], False
  for line in text.splitlines():
    log = _LOG_LINE.match(line)
    library_warning = bool(_LIBRARY_WARNING.match(line))
    is_foreign = (line.startswith((_ABSL_NOTE, *_CONTINUED)) or library_warning
                  or (log is not None and log["file"] not in OWN_FILES)
                  or (after_library_warning and line.startswith("  ")))
    after_library_warning = library_warning
    (foreign if is_foreign else own).append(line)
  return own, foreign
