"""tinyfaces-detect: detect faces in one image, or in a whole split of a dataset.

One image (writes OUT.png with detections drawn and OUT.json):
  tinyfaces-detect --model=runs/demo/export --image=photo.jpg --proposer=mtcnn --out=out.png
A split (writes result files, plus the proposer's own as a baseline):
  tinyfaces-detect --model=runs/demo/export --wider_dir=data/demo --split=val \
      --results_dir=runs/demo/results/gan --baseline_dir=runs/demo/results/baseline
FDDB (a WIDER-trained export on another dataset family's layout; journal Fig. 9):
  tinyfaces-detect --model=runs/demo/export --dataset=fddb --root=FDDB --split=all \
      --proposer=mtcnn --results_dir=runs/demo/results/fddb
A COCO split (an export of a COCO config; one COCO results list per image, per-class labels):
  tinyfaces-detect --model=runs/coco/export --root=COCO --split=val2017 \
      --proposer=coco_results:faster_rcnn_val2017.json --results_dir=runs/coco/results/ours

The crop, RoI budget, NMS and score fusion are the export's (its assets.extra/config.json);
--score_fusion=product|none overrides the fusion.
"""
import json
import os
import sys

from tinyfaces_tf.cli import common

from absl import flags  # pylint: disable=g-bad-import-order

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "SavedModel directory written by tinyfaces-train/-export.")
flags.DEFINE_string("image", None, "An image to detect faces in.")
flags.DEFINE_string("out", None, "Output PNG for --image (a .json is written beside it).")
flags.DEFINE_string("proposer", "mtcnn",
                    "mtcnn | lbp | results:DIR | coco_results:FILE | windows")
flags.DEFINE_string("score_fusion", None, "none | product: override the export's score fusion. "
                    "none: D's face probability alone. product: times the proposer's own score "
                    "(MTGAN Table 6's ensemble); use it when the proposer is strong and the model "
                    "was trained on data unlike yours (e.g. the demo model on real photographs).")
flags.DEFINE_float("min_score", 0.5, "Score threshold for drawing and the JSON of --image.")
flags.DEFINE_string("wider_dir", None, "Dataset root (WIDER layout) for split mode.")
flags.DEFINE_string("root", None, "Dataset root for split mode, in the layout of the export's "
                    "dataset family (WIDER FACE or COCO); same as --wider_dir.")
flags.DEFINE_enum("dataset", None, ["wider_face", "coco", "fddb"],
                  "Split mode: the layout of --root, when it is not the export's own dataset "
                  "family (e.g. fddb for a model trained on WIDER FACE).")
flags.DEFINE_string("split", None, "Split for split mode (WIDER: train | val | test; COCO: "
                    "val2017, minival2014, ...; FDDB: all | fold-01 ... fold-10). Default: the "
                    "config's evaluation split.")
flags.DEFINE_string("results_dir", None, "Where split mode writes our result files.")
flags.DEFINE_string("baseline_dir", None, "Where split mode writes the proposer's own results.")
flags.DEFINE_integer("limit", None, "Only the first N images of the split.", lower_bound=1)
flags.DEFINE_integer("max_skipped", 0, "Split mode: undecodable images are skipped and listed in "
                     "<results_dir>/skipped_images.txt; more than this many make the exit status "
                     "non-zero (the results of every other image are written either way).",
                     lower_bound=0)
flags.mark_flag_as_required("model")


def detect_one_image(detector, proposer, image_path, out_png, min_score):
  """Runs one image; writes OUT.png and OUT.json ({"image", "detections": [{box: xywh, score}]})."""
  from tinyfaces_tf import boxes as box_ops  # pylint: disable=g-import-not-at-top
  from tinyfaces_tf import imaging  # pylint: disable=g-import-not-at-top
  from tinyfaces_tf import viz  # pylint: disable=g-import-not-at-top
  image = imaging.load_image(image_path)
  proposals = proposer.propose(image, os.path.basename(image_path))
  boxes, scores = detector(image, proposals.boxes, proposals.scores)
  order = scores.argsort()[::-1]
  boxes, scores = boxes[order], scores[order]
  keep = scores >= min_score
  viz.draw_detections(image, boxes[keep], scores[keep], None, out_png)
  record = {"image": image_path, "detections": [
      {"box": [round(float(v), 2) for v in b], "score": float(s)}
      for b, s in zip(box_ops.xyxy_to_xywh(boxes[keep]), scores[keep])]}
  json_path = os.path.splitext(out_png)[0] + ".json"
  with open(json_path, "w") as f:
    json.dump(record, f, indent=2)
  return record, json_path


def main(argv):
  del argv
  if FLAGS.image and not FLAGS.out:
    common.usage_error("--out is required with --image")
  if FLAGS.root and FLAGS.wider_dir and FLAGS.root != FLAGS.wider_dir:
    common.usage_error("--root and --wider_dir name the same thing; give one")
  root = FLAGS.root or FLAGS.wider_dir
  if not FLAGS.image and not (root and FLAGS.results_dir):
    common.usage_error("give --image and --out, or --root (--wider_dir) and --results_dir")
  if FLAGS.image:
    json_out = os.path.splitext(FLAGS.out)[0] + ".json"
    common.check_distinct_paths(image=FLAGS.image, out=FLAGS.out, model=FLAGS.model)
    common.check_distinct_paths(image=FLAGS.image, **{"out (its .json)": json_out})
  else:
    common.check_distinct_paths(results_dir=FLAGS.results_dir, baseline_dir=FLAGS.baseline_dir,
                                **{"root" if FLAGS.root else "wider_dir": root},
                                model=FLAGS.model)
  from tinyfaces_tf import export  # pylint: disable=g-import-not-at-top
  from tinyfaces_tf import task as task_lib  # pylint: disable=g-import-not-at-top
  from tinyfaces_tf.detection import jobs  # pylint: disable=g-import-not-at-top
  try:
    detector = export.SavedModelDetector(FLAGS.model, score_fusion=FLAGS.score_fusion)
  except ValueError as e:
    common.usage_error(f"--score_fusion: {e}")
  config = detector.config
  if FLAGS.dataset and FLAGS.dataset != config.data.family:
    from tinyfaces_tf import config as config_lib  # pylint: disable=g-import-not-at-top
    config = config_lib.replace(config, data={"family": FLAGS.dataset, "train_split": None,
                                              "eval_split": None})
  task = task_lib.Task(config, root)
  try:
    proposer = task.build_proposer(FLAGS.proposer)
  except ValueError as e:
    common.usage_error(f"--proposer: {e}")
  if FLAGS.image:
    record, json_path = detect_one_image(detector, proposer, FLAGS.image, FLAGS.out,
                                         FLAGS.min_score)
    print(f"{len(record['detections'])} faces -> {FLAGS.out}, {json_path}")
    return 0
  adapter = task.adapter
  split = FLAGS.split or adapter.eval_split
  try:
    adapter.check_split(split)
  except ValueError as e:
    common.usage_error(f"--split: {e}")
  summary = jobs.detect_split(detector, adapter.image_root(split),
                              adapter.image_names(split), proposer, FLAGS.results_dir,
                              FLAGS.baseline_dir, FLAGS.limit, write=adapter.write_detections)
  print(f"{summary.images} images, {summary.detections} detections -> {FLAGS.results_dir}")
  if summary.skipped:
    for path, reason in summary.skipped[-10:]:
      print(f"skipped {path}: {reason}")
    print(f"{len(summary.skipped)} undecodable image(s) skipped, listed in "
          f"{os.path.join(FLAGS.results_dir, jobs.SKIPPED_FILE)}")
    if len(summary.skipped) > FLAGS.max_skipped:
      print(f"tinyfaces-detect: error: {len(summary.skipped)} skipped > --max_skipped="
            f"{FLAGS.max_skipped}", file=sys.stderr)
      return 1
  return 0


def run():
  common.run(main, __name__)


if __name__ == "__main__":
  run()
