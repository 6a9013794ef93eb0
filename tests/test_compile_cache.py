"""The command lines' persistent compilation cache: where it goes, how it moves or switches off."""

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

COMPILE = ("import jax, jax.numpy as jnp; from deligan_jax.runs import compile_cache\n"
           "compile_cache.enable(); jax.jit(lambda x: x * 2 + 1)(jnp.ones(3)).block_until_ready()")


def cached_files(folder) -> list[str]:
  return [n for _, _, names in os.walk(folder) for n in names] if os.path.isdir(folder) else []


@pytest.mark.parametrize("setting", ["default", "moved", "off", "jax_variable"])
def test_compiled_programs_land_where_the_settings_say(tmp_path, setting):
  home = tmp_path / "home"
  default = home / ".cache" / "deligan_jax" / "jax"
  chosen = tmp_path / "chosen"
  env = {k: v for k, v in os.environ.items()
         if k not in ("JAX_COMPILATION_CACHE_DIR", "DELIGAN_CACHE_DIR")}
  env.update(PYTHONPATH=str(REPO), HOME=str(home))
  env |= {"default": {}, "moved": {"DELIGAN_COMPILATION_CACHE": str(chosen)},
          "off": {"DELIGAN_COMPILATION_CACHE": "off"},
          "jax_variable": {"JAX_COMPILATION_CACHE_DIR": str(chosen)}}[setting]
  result = subprocess.run([sys.executable, "-c", COMPILE], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert bool(cached_files(default)) == (setting == "default")
  assert bool(cached_files(chosen)) == (setting in ("moved", "jax_variable"))
