"""What every console script shares: a quiet start, `--help` listing the tool's own flags, and
ordinary input errors as one line and a non-zero exit instead of a traceback.

TensorFlow's C++ start-up chatter is off unless TF_CPP_MIN_LOG_LEVEL is set; absl INFO lines
come back with ``--verbosity=0``; ``--verbosity=1`` (or TINYFACES_TRACEBACK=1) also shows the
traceback of an error.
"""
import os
import sys
import tempfile

TRACEBACK_ENV = "TINYFACES_TRACEBACK"


def _import_tensorflow_quietly():
  """Imports TensorFlow with its C++ start-up lines (CUDA probing, absl::InitializeLog notices,
  which TF_CPP_MIN_LOG_LEVEL does not reach) kept off the terminal; they are shown if the import
  fails, and always with --verbosity given or TF_CPP_MIN_LOG_LEVEL=0."""
  verbose = any(a.startswith(("--verbosity", "-v")) for a in sys.argv[1:])
  # 3 also drops the ERROR line TF logs when it probes for CUDA on a machine without a GPU.
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "3")
  if verbose or os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0" or "tensorflow" in sys.modules:
    return
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile() as captured:
    os.dup2(captured.fileno(), 2)
    try:
      import tensorflow  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
    except BaseException:
      os.dup2(saved, 2)
      captured.seek(0)
      sys.stderr.write(captured.read().decode(errors="replace"))
      raise
    finally:
      os.dup2(saved, 2)
      os.close(saved)


_import_tensorflow_quietly()

from absl import app  # noqa: E402  pylint: disable=g-import-not-at-top
from absl import flags  # noqa: E402  pylint: disable=g-import-not-at-top
from absl import logging  # noqa: E402  pylint: disable=g-import-not-at-top

FLAGS = flags.FLAGS


class UsageError(ValueError):
  """A bad flag or argument combination."""


# Exceptions that mean "the input is wrong" (a missing file, a malformed annotation, a bad value,
# a diverged run): the user gets their message, not a traceback.
USER_ERRORS = (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError,
               ValueError, FloatingPointError)


def _show_tracebacks() -> bool:
  return os.environ.get(TRACEBACK_ENV, "") not in ("", "0") or logging.get_verbosity() >= 1


def _key_flags_for_help(modules):
  """absl's --help lists the key flags of sys.argv[0]; a console script's argv[0] is its
  launcher, so the tool module's flags are registered there too."""
  for module in modules:
    for flag in FLAGS.get_flags_for_module(module):
      FLAGS.register_key_flag_for_module(sys.argv[0], flag)


def run(main, *flag_modules: str):
  """app.run(main) with the package's conventions; ``flag_modules`` are the modules whose flags
  --help shows (the tool's own and, for config-driven tools, cli.config_flags)."""
  _key_flags_for_help(flag_modules)
  launcher = sys.modules["__main__"]
  if not getattr(launcher, "__doc__", None):  # the usage text --help prints
    launcher.__doc__ = sys.modules[flag_modules[0]].__doc__
  program = os.path.basename(sys.argv[0])

  def wrapped(argv):
    if not FLAGS["verbosity"].present:
      logging.set_verbosity(logging.WARNING)  # INFO lines back with --verbosity=0
    try:
      return main(argv)
    except USER_ERRORS as e:
      if _show_tracebacks():
        raise
      hint = " (see --help)" if isinstance(e, UsageError) else ""
      print(f"{program}: error: {e}{hint}", file=sys.stderr)
      return 2

  app.run(wrapped)


def check_distinct_paths(**paths):
  """Refuses two flags naming the same file or folder (e.g. an output over an input): a
  UsageError naming both flags. Unset flags (None) are ignored."""
  seen = {}
  for flag, path in paths.items():
    if not path:
      continue
    real = os.path.realpath(path)
    if real in seen:
      usage_error(f"--{flag} and --{seen[real]} name the same path {path}; an output must not "
                  f"replace an input or another output")
    seen[real] = flag


def usage_error(message: str):
  """A bad flag or argument: one line naming it, exit 2."""
  raise UsageError(message)
