"""The README's code example runs as printed; the commands the docs name exist."""

import re

from tests.conftest import REPO


def test_readme_mixture_example_runs(capsys):
  blocks = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)
  assert blocks, "README has no python example"
  for block in blocks:
    exec(compile(block, "README.md", "exec"), {})
  assert "(50, 30) (50, 30)" in capsys.readouterr().out


def test_every_documented_python_m_command_names_a_runnable_module():
  """``python -m X`` in the README, docs/, configs and docstrings: X exists and runs as a script."""
  texts = [REPO / "README.md", *(REPO / "docs").glob("*.md"), *(REPO / "configs").glob("*.py"),
           *(REPO / "deligan_jax").rglob("*.py"), *(REPO / "deligan_jax").rglob("*.md"),
           *(REPO / "benchmarks").glob("*.py"), *(REPO / "tests").glob("*.py")]
  named = {m for path in texts
           for m in re.findall(r"python\s+-m\s+([A-Za-z_][\w.]*)", path.read_text())}
  ours = {m for m in named if m.split(".")[0] in ("deligan_jax", "benchmarks", "tests")}
  assert "deligan_jax.cli.compare" in ours
  for module in sorted(ours):
    path = REPO / (module.replace(".", "/") + ".py")
    assert path.is_file(), f"documented `python -m {module}`: no such module"
    assert re.search(r"""if __name__ == ["']__main__["']:""", path.read_text()), (
        f"documented `python -m {module}`: it does nothing when run")
