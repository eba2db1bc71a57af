"""tinyfaces-eval: a dataset family's official protocol on any detector's result directory.

WIDER FACE (eval_tools' protocol):
  tinyfaces-eval --results=runs/demo/results/gan --wider_dir=data/demo --out=runs/demo/eval \
      [--baseline_results=runs/demo/results/baseline] [--gt_dir=.../eval_tools/ground_truth]
  writes OUT/wider_ap.json ({label: {"easy", "medium", "hard"}}) and OUT/pr_curves.png.
COCO (pycocotools; per-image results lists as tinyfaces-detect writes them):
  tinyfaces-eval --dataset=coco --root=COCO --split=val2017 --results=... --out=...
  writes OUT/coco_ap.json (AP, AP50, AP75, APs, APm, APl) and each results dir's gathered
  coco_results.json.
FDDB (discrete and continuous ROC, as the official evaluate):
  tinyfaces-eval --dataset=fddb --root=FDDB --results=... --out=...
  writes OUT/fddb_tpr.json (true-positive rate at 500 false positives), OUT/<label>-DiscROC.txt,
  OUT/<label>-ContROC.txt and OUT/fddb_roc.png.
"""
import os

from tinyfaces_tf.cli import common

from absl import flags  # pylint: disable=g-bad-import-order

FLAGS = flags.FLAGS
flags.DEFINE_enum("dataset", "wider_face", ["wider_face", "coco", "fddb"],
                  "The dataset family whose protocol scores --results.")
flags.DEFINE_string("root", None, "Dataset root (COCO, FDDB; WIDER: same as --wider_dir).")
flags.DEFINE_string("split", None, "COCO / FDDB split evaluated (default: val2017 / all).")
flags.DEFINE_string("results", None, "Result directory (WIDER: <event>/<stem>.txt).")
flags.DEFINE_string("wider_dir", None, "WIDER root; ground truth under eval_tools/ground_truth.")
flags.DEFINE_string("gt_dir", None, "Folder with wider_face_val.mat + wider_{easy,medium,hard}_val.mat.")
flags.DEFINE_string("out", None, "Output folder for wider_ap.json and pr_curves.png.")
flags.DEFINE_string("baseline_results", None, "Optional second result dir drawn as the baseline.")
flags.DEFINE_string("label", "ours", "Name of --results in the report and the figure.")
flags.DEFINE_string("baseline_label", "baseline", "Name of --baseline_results.")
flags.mark_flags_as_required(["results", "out"])


def ground_truth_dir(wider_dir, gt_dir):
  if gt_dir:
    return gt_dir
  if not wider_dir:
    common.usage_error("give --wider_dir or --gt_dir")
  path = os.path.join(wider_dir, "eval_tools", "ground_truth")
  if not os.path.isdir(path):
    common.usage_error(f"--wider_dir: {path} does not exist; give --gt_dir")
  return path


def evaluate_family(runs):
  """COCO / FDDB through the family's adapter; prints one row per label."""
  from tinyfaces_tf.data import adapters  # pylint: disable=g-import-not-at-top
  if not FLAGS.root:
    common.usage_error(f"--root is required with --dataset={FLAGS.dataset}")
  try:
    adapter = adapters.get_adapter(FLAGS.dataset, FLAGS.root, eval_split=FLAGS.split)
  except ValueError as e:
    common.usage_error(f"--split: {e}")
  metrics = adapter.evaluate(runs, FLAGS.out)
  names = list(next(iter(metrics.values())))
  width = max(len(name) for name in metrics)
  print(f"{'':{width}s}  " + " ".join(f"{n:>8s}" for n in names))
  for label, values in metrics.items():
    print(f"{label:{width}s}  " + " ".join(f"{values[n]:8.4f}" for n in names))
  print(f"-> {FLAGS.out}")
  return 0


def main(argv):
  del argv
  if FLAGS.baseline_results and FLAGS.label == FLAGS.baseline_label:
    common.usage_error("--label and --baseline_label must differ")
  runs = {FLAGS.label: FLAGS.results}
  if FLAGS.baseline_results:
    runs = {FLAGS.baseline_label: FLAGS.baseline_results, **runs}
  if FLAGS.dataset != "wider_face":
    common.check_distinct_paths(out=FLAGS.out, results=FLAGS.results,
                                baseline_results=FLAGS.baseline_results, root=FLAGS.root)
    return evaluate_family(runs)
  gt_dir = ground_truth_dir(FLAGS.wider_dir or FLAGS.root, FLAGS.gt_dir)
  common.check_distinct_paths(out=FLAGS.out, results=FLAGS.results,
                              baseline_results=FLAGS.baseline_results, gt_dir=gt_dir)
  from tinyfaces_tf.evaluation import report  # pylint: disable=g-import-not-at-top
  aps = report.evaluate_dirs(runs, gt_dir, FLAGS.out)
  width = max(len(name) for name in aps)
  print(f"{'':{width}s}  {'Easy':>7s} {'Medium':>7s} {'Hard':>7s}")
  for name, ap in aps.items():
    print(f"{name:{width}s}  {ap['easy']:7.4f} {ap['medium']:7.4f} {ap['hard']:7.4f}")
  print(f"-> {os.path.join(FLAGS.out, report.AP_FILE)}, {os.path.join(FLAGS.out, report.PR_FIGURE)}")
  return 0


def run():
  common.run(main, __name__)


if __name__ == "__main__":
  run()
