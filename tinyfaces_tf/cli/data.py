"""tinyfaces-data: dataset utilities.

  tinyfaces-data demo --out=data/demo [--train_images=160 --val_images=60 --test_images=20 --seed=0]
      Writes the embedded demo dataset (WIDER FACE layout, from scikit-image's bundled images).
  tinyfaces-data check --wider_dir=data/WIDER
      Parses a WIDER FACE root (split files, test list, eval_tools ground truth) and lists
      missing images by path; exits non-zero when something is wrong.
  tinyfaces-data proposals --wider_dir=data/WIDER --split=train --proposer=mtcnn [--shard=3/8]
      Runs a baseline detector over a split (or one shard of it: start one job per shard, on any
      number of machines) and writes WIDER result files into <wider_dir>/proposals/<split>/,
      where the RoI build reads them. A job run again skips the images already written.
  tinyfaces-data rois --config=journal --wider_dir=data/WIDER --data_dir=~/tensorflow_datasets \\
      [--beam_pipeline_options=direct_num_workers=2,direct_running_mode=multi_processing]
      Cuts the config's training RoIs (TFDS wider_face_rois, or coco_rois for a COCO config with
      --root=COCO); with apache-beam installed the images are spread over the Beam runner's
      workers (README: Dataflow, Flink, Spark).
"""
import json

from tinyfaces_tf.cli import common
from tinyfaces_tf.cli import config_flags

from absl import flags  # pylint: disable=g-bad-import-order
from absl import logging  # pylint: disable=g-bad-import-order

FLAGS = flags.FLAGS

flags.DEFINE_string("out", None, "demo: output folder (the WIDER root to create).")
flags.DEFINE_integer("train_images", 160, "demo: number of train images.", lower_bound=0)
flags.DEFINE_integer("val_images", 60, "demo: number of val images.", lower_bound=0)
flags.DEFINE_integer("test_images", 20, "demo: number of test images.", lower_bound=0)
flags.DEFINE_integer("seed", 0, "demo: random seed (the output is deterministic for a seed).")
flags.DEFINE_string("wider_dir", None,
                    "check, proposals, rois: WIDER FACE root in the distributed layout.")
flags.DEFINE_string("root", None, "rois: the config's dataset root (WIDER FACE or COCO, as "
                    "distributed); same as --wider_dir.")
flags.DEFINE_enum("split", "train", ["train", "val", "test"], "proposals: the split.")
flags.DEFINE_string("proposer", None, "proposals: mtcnn | lbp | windows | results:DIR. rois: "
                    "run on the images that have no proposal file (default: none, ground-truth "
                    "jitter and random windows only for those).")
flags.DEFINE_string("shard", "0/1", "proposals: i/n, this job's shard of the split's images.")
flags.DEFINE_string("proposals_dir", None,
                    "proposals: output folder (default <wider_dir>/proposals/<split>).")
flags.DEFINE_string("data_dir", None, "rois: the TFDS data_dir to build into.")
flags.DEFINE_string("beam_pipeline_options", None,
                    "rois: Beam options as 'opt=value,...' (as tfds build takes them).")
config_flags.define_config_flags(default="journal")

COMMANDS = ("demo", "check", "proposals", "rois")


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


def parse_shard(text):
  """"i/n" -> (i, n), or a usage error naming --shard."""
  index, sep, count = text.partition("/")
  try:
    index, count = int(index), int(count)
  except ValueError:
    index = count = -1
  if not sep or count < 1 or not 0 <= index < count:
    common.usage_error(f"--shard={text}: expected i/n with 0 <= i < n, e.g. 0/4")
  return index, count


def proposals(wider_dir, split, proposer_spec, shard, out_dir):
  """Writes one shard's proposals; returns its JobSummary."""
  import os  # pylint: disable=g-import-not-at-top
  from tinyfaces_tf import proposals as proposals_lib  # pylint: disable=g-import-not-at-top
  from tinyfaces_tf.data import result_files  # pylint: disable=g-import-not-at-top
  from tinyfaces_tf.data import wider_face  # pylint: disable=g-import-not-at-top
  from tinyfaces_tf.detection import jobs  # pylint: disable=g-import-not-at-top
  dataset = wider_face.WiderFace(wider_dir)
  try:
    proposer = proposals_lib.make_proposer(proposer_spec)
  except ValueError as e:
    common.usage_error(f"--proposer: {e}")
  names = jobs.shard(dataset.names(split), *shard)
  return jobs.propose_split(
      proposer, dataset.images_dir(split), names, out_dir,
      done=lambda name: os.path.exists(result_files.result_path(out_dir, name)))


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
  elif command == "proposals":
    if not FLAGS.wider_dir or not FLAGS.proposer:
      common.usage_error("proposals: --wider_dir and --proposer are required")
    import os  # pylint: disable=g-import-not-at-top
    out = FLAGS.proposals_dir or os.path.join(FLAGS.wider_dir, "proposals", FLAGS.split)
    shard = parse_shard(FLAGS.shard)
    summary = proposals(FLAGS.wider_dir, FLAGS.split, FLAGS.proposer, shard, out)
    print(f"shard {shard[0]}/{shard[1]}: {summary.images} images proposed, "
          f"{summary.already_done} already done, {len(summary.skipped)} skipped -> {out}")
  elif command == "rois":
    root = FLAGS.root or FLAGS.wider_dir
    if FLAGS.root and FLAGS.wider_dir and FLAGS.root != FLAGS.wider_dir:
      common.usage_error("rois: --root and --wider_dir name the same thing; give one")
    if not root or not FLAGS.data_dir:
      common.usage_error("rois: --root (--wider_dir) and --data_dir are required")
    common.check_distinct_paths(**{"root" if FLAGS.root else "wider_dir": root},
                                data_dir=FLAGS.data_dir)
    from tinyfaces_tf import task as task_lib  # pylint: disable=g-import-not-at-top
    task = task_lib.Task(config_flags.config_from_flags(), root)
    counts = task.build_rois(FLAGS.data_dir, proposer=FLAGS.proposer,
                             beam_pipeline_options=FLAGS.beam_pipeline_options)
    print(f"{task.adapter.rois_dataset}/{task.rois_config_name} in {FLAGS.data_dir}: " +
          ", ".join(f"{split} {n} RoIs" for split, n in sorted(counts.items())))
  return 0


def run():
  common.run(main, __name__, config_flags.__name__)


if __name__ == "__main__":
  run()
