"""tinyfaces-data: dataset utilities.

  tinyfaces-data demo --out=data/demo [--train_images=160 --val_images=60 --test_images=20 --seed=0]
      Writes the embedded demo dataset (WIDER FACE layout, from scikit-image's bundled images).
  tinyfaces-data check --wider_dir=data/WIDER
      Parses a WIDER FACE root (split files, test list, eval_tools ground truth) and lists
      missing images by path; exits non-zero when something is wrong.
"""
import json

from tinyfaces_tf.cli import common

from absl import flags  # pylint: disable=g-bad-import-order
from absl import logging  # pylint: disable=g-bad-import-order

FLAGS = flags.FLAGS

flags.DEFINE_string("out", None, "demo: output folder (the WIDER root to create).")
flags.DEFINE_integer("train_images", 160, "demo: number of train images.", lower_bound=0)
flags.DEFINE_integer("val_images", 60, "demo: number of val images.", lower_bound=0)
flags.DEFINE_integer("test_images", 20, "demo: number of test images.", lower_bound=0)
flags.DEFINE_integer("seed", 0, "demo: random seed (the output is deterministic for a seed).")
flags.DEFINE_string("wider_dir", None, "check: WIDER FACE root in the distributed layout.")

COMMANDS = ("demo", "check")


def demo(out, train_images, val_images, test_images, seed):
  """Writes the demo dataset; returns make_demo_dataset's summary."""
  from tinyfaces_tf.data import demo as demo_lib  # pylint: disable=g-import-not-at-top
  summary = demo_lib.make_demo_dataset(out, train_images=train_images, val_images=val_images,
                                       test_images=test_images, seed=seed)
  logging.info("summary: %s", json.dumps(
      {k: v for k, v in summary.items() if not k.startswith("lfw_")}))
  return summary


def check(wider_dir):
  """Parses what a WIDER root has; returns (report dict, list of problems)."""
  from tinyfaces_tf.data import wider_face  # pylint: disable=g-import-not-at-top
  dataset = wider_face.WiderFace(wider_dir)
  report, problems = {}, []
  for split in wider_face.SPLITS:
    try:
      names = dataset.names(split)
    except FileNotFoundError as e:
      logging.warning("%s", e)
      continue
    except ValueError as e:
      problems.append(str(e))
      continue
    entry = {"images": len(names)}
    if split != "test":
      annotations = dataset.annotations(split)
      entry["faces"] = sum(len(a.faces) for a in annotations)
      entry["valid_faces"] = int(sum(a.valid.sum() for a in annotations))
    missing = dataset.check_images(split)
    entry["missing_images"] = len(missing)
    problems.extend(f"missing image: {path}" for path in missing)
    report[split] = entry
  if dataset.ground_truth_dir is not None:
    try:
      gt = dataset.eval_ground_truth()
      report["eval_ground_truth"] = {
          "images": gt.num_images,
          **{s: int(sum(len(g) for per in gt.gt_lists[s] for g in per)) for s in wider_face.SETTINGS}}
    except (ValueError, FileNotFoundError) as e:
      problems.append(str(e))
  else:
    logging.warning("no eval_tools/ground_truth under %s", wider_dir)
  return report, problems


def main(argv):
  if len(argv) != 2 or argv[1] not in COMMANDS:
    common.usage_error(f"expected one command, one of {COMMANDS}; got {argv[1:]}")
  command = argv[1]
  if command == "demo":
    if not FLAGS.out:
      common.usage_error("demo: --out is required")
    summary = demo(FLAGS.out, FLAGS.train_images, FLAGS.val_images, FLAGS.test_images,
                   FLAGS.seed)
    print(f"Wrote the demo dataset to {FLAGS.out}: " + ", ".join(
        f"{split} {summary[split]}" for split in ("train", "val", "test") if split in summary))
  elif command == "check":
    if not FLAGS.wider_dir:
      common.usage_error("check: --wider_dir is required")
    report, problems = check(FLAGS.wider_dir)
    print(json.dumps(report, indent=1))
    for problem in problems[:50]:
      logging.error("%s", problem)
    if problems:
      logging.error("%d problem(s) in %s", len(problems), FLAGS.wider_dir)
      return 1
  return 0


def run():
  common.run(main, __name__)


if __name__ == "__main__":
  run()
