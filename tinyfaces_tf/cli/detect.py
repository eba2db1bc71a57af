"""tinyfaces-detect: detect faces in one image, or in a whole WIDER split.

One image (writes OUT.png with detections drawn and OUT.json):
  tinyfaces-detect --model=runs/demo/export --image=photo.jpg --proposer=mtcnn --out=out.png
A split (writes WIDER result files, plus the proposer's own as a baseline):
  tinyfaces-detect --model=runs/demo/export --wider_dir=data/demo --split=val \
      --results_dir=runs/demo/results/gan --baseline_dir=runs/demo/results/baseline
"""
import json
import os

from absl import app
from absl import flags
from absl import logging

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "SavedModel directory written by tinyfaces-export.")
flags.DEFINE_string("image", None, "An image to detect faces in.")
flags.DEFINE_string("out", None, "Output PNG for --image (a .json is written beside it).")
flags.DEFINE_string("proposer", "mtcnn", "mtcnn | results:DIR | windows")
flags.DEFINE_float("min_score", 0.5, "Score threshold for drawing and the JSON of --image.")
flags.DEFINE_string("wider_dir", None, "WIDER-layout root for split mode.")
flags.DEFINE_enum("split", "val", ["train", "val", "test"], "Split for split mode.")
flags.DEFINE_string("results_dir", None, "Where split mode writes our WIDER result files.")
flags.DEFINE_string("baseline_dir", None, "Where split mode writes the proposer's own results.")
flags.DEFINE_integer("limit", None, "Only the first N images of the split.")
flags.mark_flag_as_required("model")


def detect_one_image(detector, proposer, image_path, out_png, min_score):
  """Runs one image; writes OUT.png and OUT.json ({"image", "detections": [{box: xywh, score}]})."""
  from tinyfaces_tf import boxes as box_ops
  from tinyfaces_tf import detect
  from tinyfaces_tf import viz
  image = detect.load_image(image_path)
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
  from tinyfaces_tf import detect
  from tinyfaces_tf import export
  from tinyfaces_tf import proposals as proposals_lib
  from tinyfaces_tf.data import wider
  detector = export.SavedModelDetector(FLAGS.model)
  try:
    proposer = proposals_lib.make_proposer(FLAGS.proposer)
  except ValueError as e:
    raise app.UsageError(f"--proposer: {e}")
  if FLAGS.image:
    if not FLAGS.out:
      raise app.UsageError("--out is required with --image")
    record, json_path = detect_one_image(detector, proposer, FLAGS.image, FLAGS.out,
                                         FLAGS.min_score)
    logging.info("%d faces -> %s, %s", len(record["detections"]), FLAGS.out, json_path)
    return
  if not (FLAGS.wider_dir and FLAGS.results_dir):
    raise app.UsageError("give --image and --out, or --wider_dir and --results_dir")
  dataset = wider.WiderFace(FLAGS.wider_dir)
  names = ([a.name for a in dataset.annotations(FLAGS.split)] if FLAGS.split != "test"
           else dataset.test_names())
  summary = detect.detect_split(detector, dataset.images_dir(FLAGS.split), names, proposer,
                                FLAGS.results_dir, FLAGS.baseline_dir, FLAGS.limit)
  logging.info("%d images, %d detections, %d skipped -> %s", summary["images"],
               summary["detections"], len(summary["skipped"]), FLAGS.results_dir)


def run():
  app.run(main)


if __name__ == "__main__":
  run()
