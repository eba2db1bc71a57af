"""Scoring result directories with the official WIDER protocol and writing the report files."""
import json
import os
from typing import Dict, Mapping

from tinyfaces_tf import atomic
from tinyfaces_tf import viz
from tinyfaces_tf.data import result_files
from tinyfaces_tf.data import wider_ground_truth
from tinyfaces_tf.evaluation import wider_protocol

AP_FILE = "wider_ap.json"          # {label: {"easy", "medium", "hard"}}
PR_FIGURE = "pr_curves.png"


def evaluate_dirs(runs: Mapping[str, str], gt_dir: str, out: str) -> Dict[str, Dict[str, float]]:
  """Scores result dirs ({label: dir}, drawn in that order); writes ``out/wider_ap.json`` and
  ``out/pr_curves.png``; returns {label: {setting: AP}}."""
  gt = wider_ground_truth.read_eval_ground_truth(gt_dir)
  curves, aps = {}, {}
  for label, path in runs.items():
    try:
      result = wider_protocol.evaluate(result_files.read_result_dir(path), gt)
    except ValueError as e:
      raise ValueError(f"{path}: {e}") from None
    aps[label] = {s: float(result.ap[s]) for s in wider_protocol.SETTINGS}
    curves[label] = {s: (result.precision[s], result.recall[s], result.ap[s])
                     for s in wider_protocol.SETTINGS}
  atomic.write_json(os.path.join(out, AP_FILE), aps)
  viz.plot_pr_curves(curves, os.path.join(out, PR_FIGURE))
  return aps


def read_aps(out: str) -> Dict[str, Dict[str, float]]:
  """What ``evaluate_dirs`` wrote into ``out``."""
  with open(os.path.join(out, AP_FILE)) as f:
    return json.load(f)
