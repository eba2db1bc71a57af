"""tinyfaces-eval: the official WIDER FACE protocol on any detector's result directory.

  tinyfaces-eval --results=runs/demo/results/gan --wider_dir=data/demo --out=runs/demo/eval \
      [--baseline_results=runs/demo/results/baseline] [--gt_dir=.../eval_tools/ground_truth]
Writes OUT/wider_ap.json ({"easy", "medium", "hard"}) and OUT/pr_curves.png.
"""
import os

from absl import app
from absl import flags
from absl import logging

FLAGS = flags.FLAGS
flags.DEFINE_string("results", None, "WIDER result directory (<event>/<stem>.txt).")
flags.DEFINE_string("wider_dir", None, "WIDER root; ground truth under eval_tools/ground_truth.")
flags.DEFINE_string("gt_dir", None, "Folder with wider_face_val.mat + wider_{easy,medium,hard}_val.mat.")
flags.DEFINE_string("out", None, "Output folder for wider_ap.json and pr_curves.png.")
flags.DEFINE_string("baseline_results", None, "Optional second result dir drawn as the baseline.")
flags.DEFINE_string("label", "ours", "Legend name of --results.")
flags.DEFINE_string("baseline_label", "baseline", "Legend name of --baseline_results.")
flags.mark_flags_as_required(["results", "out"])


def ground_truth_dir(wider_dir, gt_dir):
  if gt_dir:
    return gt_dir
  if not wider_dir:
    raise app.UsageError("give --wider_dir or --gt_dir")
  path = os.path.join(wider_dir, "eval_tools", "ground_truth")
  if not os.path.isdir(path):
    raise app.UsageError(f"--wider_dir: {path} does not exist; give --gt_dir")
  return path


def main(argv):
  del argv
  gt_dir = ground_truth_dir(FLAGS.wider_dir, FLAGS.gt_dir)
  from tinyfaces_tf.evaluation import report
  aps = report.evaluate_dirs(FLAGS.results, gt_dir, FLAGS.out, FLAGS.baseline_results, FLAGS.label,
                      FLAGS.baseline_label)
  for name, ap in aps.items():
    logging.info("%-10s easy %.4f  medium %.4f  hard %.4f", name, ap["easy"], ap["medium"],
                 ap["hard"])


def run():
  app.run(main)


if __name__ == "__main__":
  run()
