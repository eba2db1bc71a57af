"""Scoring result directories with the official protocol and writing the usual report files."""
import json
import os

from tinyfaces_tf import viz
from tinyfaces_tf.data import eval_tools
from tinyfaces_tf.evaluation import wider as wider_eval


def evaluate_dirs(results, gt_dir, out, baseline_results=None, label="ours",
                  baseline_label="baseline"):
  """Scores one (or two) result dirs; writes wider_ap.json and pr_curves.png; returns AP dicts."""
  gt = eval_tools.read_eval_ground_truth(gt_dir)
  runs = {label: results}
  if baseline_results:
    runs = {baseline_label: baseline_results, **runs}
  curves, aps = {}, {}
  for name, path in runs.items():
    result = wider_eval.evaluate(eval_tools.read_result_dir(path), gt)
    aps[name] = {s: float(result.ap[s]) for s in wider_eval.SETTINGS}
    curves[name] = {s: (result.precision[s], result.recall[s], result.ap[s])
                    for s in wider_eval.SETTINGS}
  os.makedirs(out, exist_ok=True)
  with open(os.path.join(out, "wider_ap.json"), "w") as f:
    json.dump(aps[label], f, indent=2)
  if baseline_results:
    with open(os.path.join(out, "baseline_ap.json"), "w") as f:
      json.dump(aps[baseline_label], f, indent=2)
  viz.plot_pr_curves(curves, os.path.join(out, "pr_curves.png"))
  return aps
