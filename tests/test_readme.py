"""The README's code example runs as printed."""

import re

from tests.conftest import REPO


def test_readme_mixture_example_runs(capsys):
  blocks = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)
  assert blocks, "README has no python example"
  for block in blocks:
    exec(compile(block, "README.md", "exec"), {})
  assert "(50, 30) (50, 30)" in capsys.readouterr().out
