"""Command-line flags generated from the ExperimentConfig dataclasses (big_vision style).

``--config`` names the base: a preset (journal, cvpr18, mtgan, sbu, demo), a config.json or a run
directory. Every field of every section is then settable as ``--config.<section>.<field>``
(``--config.train.batch_size=64``, ``--config.loss.g_adv=false``,
``--config.optimizer.decay_epochs=6,8``, ``--config.train.steps=none``), with the type, choices
and help taken from the dataclass. Flagfiles hold the same lines, one table row each.
"""
import dataclasses
import re
import typing

from absl import flags

from tinyfaces_tf import config as config_lib

PREFIX = "config"
_NONE = ("none", "null")


def _attribute_docs(cls) -> dict:
  """{field: help} from the "Attributes:" section of a dataclass docstring."""
  docs, name = {}, None
  text = (cls.__doc__ or "").split("Attributes:", 1)
  if len(text) < 2:
    return docs
  for line in text[1].splitlines():
    match = re.match(r"^    (\w+): (.*)$", line)
    if match:
      name = match.group(1)
      docs[name] = match.group(2).strip()
    elif name and line.startswith("      "):
      docs[name] += " " + line.strip()
    elif line.strip():
      name = None
  return docs


def _leaves(cls, prefix=()):
  """(path tuple, dataclasses.Field, resolved type, owning class) of every leaf field."""
  types_ = config_lib.field_types(cls)
  for field in dataclasses.fields(cls):
    tp = types_[field.name]
    if dataclasses.is_dataclass(tp):
      yield from _leaves(tp, prefix + (field.name,))
    else:
      yield prefix + (field.name,), field, tp, cls


class _FieldParser(flags.ArgumentParser):
  """Parses one config field's command-line text into its Python type."""

  def __init__(self, tp, choices=None):
    self.tp, self.choices = tp, choices
    inner = config_lib.optional_inner(tp)
    self.optional, self.base = inner is not None, inner if inner is not None else tp
    names = {bool: "bool", int: "int", float: "float", str: "string"}
    if typing.get_origin(self.base) is tuple:
      self.syntax = "comma-separated list"
    else:
      self.syntax = names.get(self.base, "value")
    if self.optional:
      self.syntax += " or none"

  def flag_type(self):
    return self.syntax

  def parse(self, argument):
    if not isinstance(argument, str):
      return argument
    text = argument.strip()
    if self.optional and text.lower() in _NONE:
      return None
    base = self.base
    if typing.get_origin(base) is tuple:
      item = typing.get_args(base)[0]  # every tuple field holds one type (float)
      return tuple(self._scalar(item, v.strip()) for v in text.split(",") if v.strip())
    return self._scalar(base, text)

  def _scalar(self, tp, text):
    if tp is bool:
      if text.lower() in ("true", "1", "yes"):
        return True
      if text.lower() in ("false", "0", "no"):
        return False
      raise ValueError(f"expected true or false, got {text!r}")
    if tp is int:
      return int(text)
    if tp is float:
      return float(text)
    if self.choices and text not in self.choices:
      raise ValueError(f"expected one of {', '.join(self.choices)}, got {text!r}")
    return text


def define_config_flags(default: str = "journal", flag_values=flags.FLAGS):
  """Defines --config and one --config.<section>.<field> flag per leaf field."""
  flags.DEFINE_string(PREFIX, default, "Base config: a preset (" + ", ".join(config_lib.PRESETS)
                      + "), a config.json, or a run directory. Every field below overrides it.",
                      flag_values=flag_values)
  docs = {}
  for path, field, tp, owner in _leaves(config_lib.ExperimentConfig):
    docs.setdefault(owner, _attribute_docs(owner))
    choices = field.metadata.get("choices")
    parser = _FieldParser(tp, choices)
    help_text = docs[owner].get(field.name, "")
    if choices:
      help_text += f" One of: {', '.join(choices)}."
    flags.DEFINE(parser, ".".join((PREFIX, *path)), None, help_text or field.name,
                 flag_values=flag_values)


def config_from_flags(flag_values=flags.FLAGS) -> config_lib.ExperimentConfig:
  """The --config base with every explicitly given --config.<section>.<field> applied."""
  cfg = config_lib.resolve(flag_values[PREFIX].value)
  overrides = {}
  for path, _, _, _ in _leaves(config_lib.ExperimentConfig):
    flag = flag_values[".".join((PREFIX, *path))]
    if flag.present:
      overrides[path] = flag.value
  return apply_overrides(cfg, overrides)


def apply_overrides(cfg, overrides: dict):
  """``cfg`` with {(section, ..., field): value} replaced. Each dataclass is replaced once with all
  its new fields, so its validation sees the combination (e.g. hr_size and scale together)."""
  here = {path[0]: value for path, value in overrides.items() if len(path) == 1}
  nested = {}
  for path, value in overrides.items():
    if len(path) > 1:
      nested.setdefault(path[0], {})[path[1:]] = value
  for name, sub in nested.items():
    here[name] = apply_overrides(getattr(cfg, name), sub)
  return dataclasses.replace(cfg, **here) if here else cfg
