"""The errors a user can cause: each says in one line what is wrong and what to do.

The command lines print a :class:`UserError` as that line, without a traceback; anything
else is a bug and keeps its traceback.
"""


class UserError(Exception):
  """Bad input or a request that cannot be served; the message says all there is to say."""


class ConfigError(UserError, ValueError):
  """A config value that cannot work; the message names the field."""


class DataError(UserError, ValueError):
  """A data file, folder or data config field is missing or malformed."""


class CheckpointError(UserError):
  """A checkpoint that does not fit this config's model, or one that could not be written."""


class WorkdirError(UserError):
  """The workdir cannot be created or written."""


class WorkdirBusy(UserError):
  """Another live process owns the workdir."""


class DistributedError(UserError):
  """The processes of a run cannot be started together."""


class WeightsError(UserError, RuntimeError):
  """Inception weights are missing, or a given file is not the expected archive."""


class RequestError(UserError, ValueError):
  """A request that cannot be served as asked (e.g. an out-of-range --component)."""
