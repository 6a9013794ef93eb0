"""A study file read, checked and laid out: each (arm, seed) run's config, folder and command.

A study file is a Python file whose ``get_config()`` returns a ConfigDict (see
``configs/studies/``):

  config         the experiment config file, ``path[:arg]`` (a path relative to the working
                 folder); each arm's model joins the arg
  seeds          the seeds every arm trains
  baseline       the arm every other is compared with
  also_compared_with  arms every row is compared with too (each pair once)
  overrides      ``'field=value'`` config overrides of every arm
  arms           ``{name: {'model': ..., 'overrides': ('field=value', ...)}}``, and an
                 arm's own ``'seeds'`` where it trains fewer than the study's
  steps          checkpoints (batches) scored for the trajectory, besides the last one; a
                 study whose overrides would not keep them is refused
  num_samples    samples per evaluation; 0: eval.py's default
  sigma_scales   sampling-time sigma scales scored on the last checkpoint ...
  sigma_scale_arms  ... of these arms (DeLiGAN)
  selection      the rule that picks an arm: the highest ``score`` among the arms whose
                 FID is at most ``max_fid_ratio`` times the baseline's (each defaults
                 to within_class and 1.25, so ``{}`` is that rule); a study without one
                 (a confirmation) picks nothing

A value is read as a Python literal where it is one (``0.5``, ``(1.0, 1.0)``, ``False``),
else as a string, as ``--config.field=value`` reads it. Layout of a study's folder:
``study_plan.json`` (the study as resolved, what each run's command reads), ``<arm>/seed_<s>/``
(one run, as ``train.py`` writes it) and ``logs/<arm>_seed_<s>.log``.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import json
import os
import sys

import ml_collections

from deligan_jax import config as config_lib
from deligan_jax.errors import ConfigError
from deligan_jax.errors import RequestError
from deligan_jax.runs import atomic_files
from deligan_jax.runs import checkpoints
from deligan_jax.scores import compare

STUDY_FILE = "study_plan.json"


@dataclasses.dataclass(frozen=True)
class Arm:
  model: str
  overrides: tuple[str, ...] = ()
  seeds: tuple[int, ...] | None = None  # None: the study's


@dataclasses.dataclass(frozen=True)
class Study:
  config: str
  seeds: tuple[int, ...]
  baseline: str
  arms: dict[str, Arm]
  also_compared_with: tuple[str, ...] = ()
  overrides: tuple[str, ...] = ()
  steps: tuple[int, ...] = ()
  num_samples: int = 0
  sigma_scales: tuple[float, ...] = ()
  sigma_scale_arms: tuple[str, ...] = ()
  selection_score: str = ""  # "": no selection rule
  selection_max_fid_ratio: float = 1.25

  @classmethod
  def from_config(cls, c: ml_collections.ConfigDict) -> Study:
    """The study of a study file's ConfigDict; refuses one that cannot run, in one line."""
    c = c.to_dict()
    known = {f.name for f in dataclasses.fields(cls)} - {"selection_score",
                                                         "selection_max_fid_ratio"}
    unknown = sorted(set(c) - known - {"selection"})
    if unknown:
      raise ConfigError(f"study: unknown fields {unknown}; a study has {sorted(known)} "
                        "and selection")
    try:
      arms = {name: Arm(arm["model"], tuple(arm.get("overrides", ())),
                        tuple(arm["seeds"]) if "seeds" in arm else None)
              for name, arm in c.get("arms", {}).items()}
    except (KeyError, TypeError) as e:
      raise ConfigError(f"study.arms: each arm is {{'model': ..., 'overrides': (...)}} and "
                        f"optionally 'seeds': (...); missing {e}") from None
    # The baseline first; ConfigDict keeps the other arms in sorted order.
    arms = dict(sorted(arms.items(), key=lambda arm: arm[0] != c.get("baseline")))
    selection = c.get("selection")  # absent or None: no rule; {}: the default rule
    if selection is not None and (not isinstance(selection, dict)
                                  or set(selection) - {"score", "max_fid_ratio"}):
      raise ConfigError(f"study.selection: {{'score': ..., 'max_fid_ratio': ...}}, got "
                        f"{selection!r}")
    rule = {"score": "" if selection is None else "within_class", "max_fid_ratio": 1.25,
            **(selection or {})}
    path, colon, arg = c.get("config", "").partition(":")
    # Absolute, so that each run's command works from any folder (a job array's).
    study = cls(config=os.path.abspath(path) + colon + arg, seeds=tuple(c.get("seeds", ())),
                baseline=c.get("baseline", ""), arms=arms,
                also_compared_with=tuple(c.get("also_compared_with", ())),
                overrides=tuple(c.get("overrides", ())), steps=tuple(c.get("steps", ())),
                num_samples=c.get("num_samples", 0),
                sigma_scales=tuple(float(s) for s in c.get("sigma_scales", ())),
                sigma_scale_arms=tuple(c.get("sigma_scale_arms", ())),
                selection_score=rule["score"], selection_max_fid_ratio=rule["max_fid_ratio"])
    study.check()
    return study

  def check(self) -> None:
    """Refuses a study that cannot run, naming its field; builds and validates every arm."""
    if not self.arms:
      raise ConfigError("study.arms: no arms")
    bad = [name for name in self.arms if not config_lib.FOLDER_NAME.fullmatch(name)]
    if bad:
      raise ConfigError(f"study.arms: names must be folder names (letters, digits, _.+-), "
                        f"got {bad}")
    if not self.seeds or len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
      raise ConfigError(f"study.seeds: distinct seeds >= 0, got {self.seeds}")
    stray = {name: arm.seeds for name, arm in self.arms.items()
             if arm.seeds is not None and not set(arm.seeds) <= set(self.seeds)}
    if stray:
      raise ConfigError(f"study.arms: an arm's seeds must be among study.seeds "
                        f"{self.seeds}, got {stray}")
    if self.baseline not in self.arms:
      raise ConfigError(f"study.baseline: {self.baseline!r} is not one of the arms "
                        f"{list(self.arms)}")
    for field in ("also_compared_with", "sigma_scale_arms"):
      unknown = sorted(set(getattr(self, field)) - set(self.arms))
      if unknown:
        raise ConfigError(f"study.{field}: {unknown} are not arms")
    compared = (self.baseline, *self.also_compared_with)
    if len(set(compared)) != len(compared):
      raise ConfigError(f"study.also_compared_with: arms other than the baseline, each once, "
                        f"got {list(self.also_compared_with)}")
    if self.selection_score:
      higher_is_better = [key for key, _, higher in compare.IMAGE_COLUMNS if higher]
      if self.selection_score not in higher_is_better:
        raise ConfigError(f"study.selection.score: one of {higher_is_better} (the rule takes "
                          f"the highest), got {self.selection_score!r}")
      ratio = self.selection_max_fid_ratio
      if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not ratio > 0:
        raise ConfigError(f"study.selection.max_fid_ratio: a positive number, got {ratio!r}")
    if any(not s > 0 for s in self.sigma_scales):
      raise ConfigError(f"study.sigma_scales: must be positive, got {self.sigma_scales}")
    for name in self.arms:
      config = self.run_config(name, self.seeds[0])
      outside = [step for step in self.steps if not 0 < step <= config.num_steps]
      if outside:
        raise ConfigError(f"study.steps: arm {name!r} trains {config.num_steps} batches, so "
                          f"it has no checkpoint of batches {outside}")
      lost = [step for step in self.steps if step not in kept_checkpoints(config)]
      if lost:
        raise ConfigError(
            f"study.steps: arm {name!r} would not keep the checkpoints of batches {lost} "
            f"(checkpoint_every={config.checkpoint_every}, keep_checkpoints="
            f"{config.keep_checkpoints}, num_steps={config.num_steps}); set checkpoint_every "
            "and keep_checkpoints in study.overrides")
      if name in self.sigma_scale_arms and self.sigma_scales and config.model != "deligan":
        raise ConfigError(f"study.sigma_scale_arms: {name!r} is a {config.model!r} arm; only "
                          "DeLiGAN has a sigma to scale")

  def run_config(self, arm: str, seed: int) -> ml_collections.ConfigDict:
    """The validated experiment config of one run: the config file, the overrides, the seed."""
    path, _, arg = self.config.partition(":")
    config = load_config_file(path, ",".join(filter(None, (arg, self.arms[arm].model))))
    for override in (*self.overrides, *self.arms[arm].overrides, f"seed={seed}"):
      apply_override(config, override, f"study arm {arm!r}")
    config_lib.validate(config)
    return config

  def runs(self) -> list[tuple[str, int]]:
    """Every (arm, seed), seed by seed: every arm has its first seed before any has its second."""
    return [(arm, seed) for seed in self.seeds for arm in self.arms if seed in self.seeds_of(arm)]

  def seeds_of(self, arm: str) -> tuple[int, ...]:
    return self.seeds if self.arms[arm].seeds is None else self.arms[arm].seeds

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self), indent=2)

  @classmethod
  def from_json(cls, text: str) -> Study:
    # A plan written by a later version may hold fields this one does not know.
    known = {f.name for f in dataclasses.fields(cls)}
    fields = {k: v for k, v in json.loads(text).items() if k in known}
    fields["arms"] = {name: Arm(arm["model"], tuple(arm["overrides"]),
                                None if arm["seeds"] is None else tuple(arm["seeds"]))
                      for name, arm in fields["arms"].items()}
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})


def kept_checkpoints(config: ml_collections.ConfigDict) -> set[int]:
  """The batches whose checkpoints a finished run of ``config`` keeps, interrupted or not."""
  return checkpoints.Retention.of(config).kept(
      {*range(config.checkpoint_every, config.num_steps + 1, config.checkpoint_every),
       config.num_steps})


def load_config_file(path: str, arg: str) -> ml_collections.ConfigDict:
  """``get_config(arg)`` of a config file, as ``--config path:arg`` loads it."""
  if not os.path.isfile(path):
    raise RequestError(f"{path} cannot be loaded: No such file")
  spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(path))[0],
                                                path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg) if arg else module.get_config()


def apply_override(config: ml_collections.ConfigDict, override: str, where: str) -> None:
  """Sets ``field=value`` (dotted field) in ``config``, the value typed as a Python literal."""
  field, equals, text = override.partition("=")
  if not equals:
    raise ConfigError(f"{where}: override {override!r} is not field=value")
  try:
    value = ast.literal_eval(text)
  except (ValueError, SyntaxError):
    value = text
  *sections, key = field.split(".")
  node = config
  try:
    for section in sections:
      node = node[section]
    if key not in node:
      raise KeyError(key)
    node[key] = value
  except (KeyError, AttributeError, TypeError) as e:
    raise ConfigError(f"{where}: cannot set config.{field} to {text!r} ({e})") from None


def run_dir(workdir: str, arm: str, seed: int) -> str:
  return os.path.join(workdir, arm, f"seed_{seed}")


def log_path(workdir: str, arm: str, seed: int) -> str:
  return os.path.join(workdir, "logs", f"{arm}_seed_{seed}.log")


def run_command(workdir: str, arm: str, seed: int) -> list[str]:
  """The command that trains (or resumes) and scores one run: what the pool runs, and prints."""
  return [sys.executable, "-m", "deligan_jax.cli.study", f"--workdir={os.path.abspath(workdir)}",
          f"--run={arm}:{seed}"]


def record(study: Study, workdir: str) -> None:
  """Writes ``study_plan.json`` into ``workdir``, what each run's command reads."""
  os.makedirs(workdir, exist_ok=True)
  atomic_files.write_atomic(os.path.join(workdir, STUDY_FILE), study.to_json())


def is_study(workdir: str) -> bool:
  """Whether ``workdir`` is a study's folder: the study command records its plan first."""
  return os.path.isfile(os.path.join(workdir, STUDY_FILE))


def read(workdir: str) -> Study:
  if not is_study(workdir):
    raise RequestError(f"{workdir} holds no {STUDY_FILE}: start the study with --study FILE")
  with open(os.path.join(workdir, STUDY_FILE)) as f:
    return Study.from_json(f.read())
