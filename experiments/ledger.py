"""The ledger: every finished row-seed of the WIDER tables, kept beside their results (one JSON file
per scale, committed), so that a table's seeds can be trained over several sessions and machines.

A row-seed's run directory (checkpoints, export, detections) is too large to keep; its metrics
are small. A record is reused only while everything that decides its numbers is the same, which
its fingerprint covers: the row's whole ExperimentConfig with its seed, the demo data version,
and the bytes of the split files and proposals the RoIs and detections come from. The code is
not in the fingerprint: a change that moves trained numbers must start a new ledger (remove the
file, or run with `--noreuse_ledger`). Each record also says where, when and from which commit
it was made, so a table can say which machines its seeds come from.

Kept apart from run.py (no absl flags) so tests import it directly.
"""
import datetime
import hashlib
import json
import os
import platform
import subprocess
from typing import Iterable, Optional, Tuple

LEDGER_FILE = "run_ledger_{scale}.json"  # in experiments/results/


def path_of(results_dir: str, scale: str) -> str:
  return os.path.join(results_dir, LEDGER_FILE.format(scale=scale))


def _hash_files(digest, paths: Iterable[str]):
  """Feeds each file's name (relative to its tree) and bytes into ``digest``, in sorted order;
  a folder stands for every file below it. A missing path is hashed as missing."""
  for path in sorted(paths):
    if os.path.isdir(path):
      files = [(os.path.relpath(file, path), file) for file in sorted(
          os.path.join(parent, name) for parent, _, names in os.walk(path) for name in names)]
    else:
      files = [(os.path.basename(path), path)]
    for name, file in files:
      digest.update(name.encode() + b"\0")
      if os.path.exists(file):
        with open(file, "rb") as f:
          digest.update(hashlib.sha256(f.read()).digest())
      else:
        digest.update(b"missing")


def fingerprint_parts(config_json: str, data_version: Optional[int],
                      input_paths: Iterable[str]) -> dict:
  """sha256 of the config, and of the input files, with the data version: what a record keeps
  beside its fingerprint, so a mismatch can say which part moved."""
  inputs = hashlib.sha256()
  _hash_files(inputs, input_paths)
  return {"config": hashlib.sha256(config_json.encode()).hexdigest(),
          "data_version": data_version, "inputs": inputs.hexdigest()}


def digest(parts: dict) -> str:
  """The fingerprint: one sha256 of the parts."""
  return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def fingerprint(config_json: str, data_version: Optional[int], input_paths: Iterable[str]) -> str:
  """sha256 over what decides a row-seed's numbers (see the module docstring)."""
  return digest(fingerprint_parts(config_json, data_version, input_paths))


# The widest matrix / vector extension names the kernels a CPU runs ("AMD EPYC" alone has been
# both an AVX2 and an avx512_bf16 machine here), widest first.
CPU_EXTENSIONS = ("amx_bf16", "avx512_bf16", "avx512f", "avx2")


def machine(cpuinfo: str = "/proc/cpuinfo") -> str:
  """The CPU model and its widest extension (what the cross-machine noise depends on), else the
  platform."""
  model, flags = None, set()
  try:
    with open(cpuinfo) as f:
      for line in f:
        key, _, value = line.partition(":")
        if key.strip() == "model name" and model is None:
          model = value.strip()
        elif key.strip() == "flags" and not flags:
          flags = set(value.split())
  except OSError:
    pass
  if model is None:
    return platform.processor() or platform.machine()
  widest = next((name for name in CPU_EXTENSIONS if name in flags), None)
  return f"{model} ({widest})" if widest else model


def _commit(repo: str) -> Optional[str]:
  try:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, check=True,
                          capture_output=True, text=True).stdout.strip() or None
  except (OSError, subprocess.CalledProcessError):
    return None


def load(path: str) -> dict:
  """{run key: record}; an absent ledger is empty."""
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    try:
      return json.load(f)
    except json.JSONDecodeError as e:
      raise ValueError(f"{path}: not a run ledger ({e})") from e


def lookup(path: str, key: str, parts: dict, labels: Iterable[str]) -> Tuple[Optional[dict], str]:
  """(``key``'s record, "") if it was made with these fingerprint parts and holds every label;
  else (None, why not)."""
  record = load(path).get(key)
  if record is None:
    return None, "not recorded"
  if record["fingerprint"] != digest(parts):
    moved = [name for name, value in parts.items() if record.get("parts", {}).get(name) != value]
    return None, f"recorded with another {' and '.join(moved) or 'fingerprint'}"
  missing = [label for label in labels if label not in record["metrics"]]
  if missing:
    return None, f"recorded without {', '.join(missing)}"
  return record, ""


def record(path: str, key: str, parts: dict, metrics: dict, repo: str) -> dict:
  """Adds (or replaces) ``key``'s record; written atomically, keys sorted (stable diffs)."""
  from tinyfaces_tf import atomic  # pylint: disable=g-import-not-at-top
  entry = {"fingerprint": digest(parts), "parts": parts, "metrics": metrics,
           "machine": machine(), "date": datetime.date.today().isoformat(),
           "commit": _commit(repo)}
  ledger = load(path)
  ledger[key] = entry
  atomic.write_text(path, json.dumps(ledger, indent=1, sort_keys=True) + "\n")
  return entry
