"""The demo export on real photographs of people, faces shrunk to tiny sizes (issue: does the GAN
re-scoring rank real faces worse than the proposer's own scores?).

  python experiments/real_photos.py --model=runs/demo/export     # after `make demo`

The photographs ship with the dependencies (scikit-image's astronaut and camera, matplotlib's
grace_hopper.jpg); their face boxes are hand-labelled in experiments/real_photos/faces.json.
Each photograph is shrunk (anti-aliased) so its face is about 12, 20 and 30 px high; each size
is written as a WIDER-layout root (images, split file, eval_tools ground truth) and goes through
the same proposer -> tinyfaces-detect -> official WIDER evaluation path as the demo val split.
The table gives, per size and pooled over every even size from 12 to 30 px, the Hard AP (every
face here is at least 10 px) of the proposer's own scores, of ours, and of ours x the proposer
(`--score_fusion=product`), and writes
experiments/results/real_photos.{md,json} and a detections figure per size.
"""
import json
import os

import numpy as np
from absl import app
from absl import flags
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
FACES_FILE = os.path.join(HERE, "real_photos", "faces.json")
FACE_HEIGHTS = (12, 20, 30)  # target face heights in pixels, one AP each
# One AP over every photograph at every even height from 12 to 30 px: 30 faces instead of 3, so
# one face changing rank moves it less.
POOLED_HEIGHTS = tuple(range(12, 31, 2))
SETTING = "hard"  # faces >= 10 px: every face of every size counts
PROPOSER, OURS, FUSED = "proposer", "ours", "ours x proposer"

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "runs/demo/export", "SavedModel written by tinyfaces-train/-export.")
flags.DEFINE_string("proposer", "mtcnn", "Proposer spec (mtcnn | lbp | windows).")
flags.DEFINE_string("out", "runs/real_photos", "Where the WIDER-layout roots and results go.")
flags.DEFINE_string("results_dir", os.path.join(HERE, "results"),
                    "Where real_photos.md, .json and the figures go.")


def load_photo(source: str) -> np.ndarray:
  """uint8 RGB [H, W, 3] of a photograph named as in faces.json."""
  from skimage import color  # pylint: disable=g-import-not-at-top
  from skimage import data  # pylint: disable=g-import-not-at-top
  if source.startswith("skimage.data."):
    image = getattr(data, source[len("skimage.data."):].split("(")[0])()
  elif "grace_hopper.jpg" in source:
    from matplotlib import cbook  # pylint: disable=g-import-not-at-top
    image = np.asarray(Image.open(cbook.get_sample_data("grace_hopper.jpg")))
  else:
    raise ValueError(f"{FACES_FILE}: unknown photograph source {source!r}")
  if image.ndim == 2:
    image = (color.gray2rgb(image)).astype(np.uint8)
  return np.ascontiguousarray(image[..., :3])


def write_root(root, photos, face_heights):
  """A WIDER-layout val split of every photograph shrunk so its first face is h px high, for
  each h of ``face_heights`` (one event per height); returns the image names."""
  from tinyfaces_tf.data import wider_face  # pylint: disable=g-import-not-at-top
  from tinyfaces_tf.data import wider_ground_truth  # pylint: disable=g-import-not-at-top
  annotations = []
  for face_height in face_heights:
    event = f"{len(annotations)}--Photo_{face_height}px"
    for index, (name, entry) in enumerate(sorted(photos.items())):
      image = load_photo(entry["source"])
      boxes = np.asarray(entry["faces"], np.float64)
      factor = face_height / (boxes[0, 3] - boxes[0, 1])
      size = (max(1, round(image.shape[1] * factor)), max(1, round(image.shape[0] * factor)))
      small = Image.fromarray(image).resize(size, Image.LANCZOS)
      image_name = f"{event}/{event.split('--')[0]}_Photo_{name}_{index}.jpg"
      path = os.path.join(root, "WIDER_val", "images", *image_name.split("/"))
      os.makedirs(os.path.dirname(path), exist_ok=True)
      small.save(path, quality=95)
      scaled = np.round(boxes * factor).astype(int)
      annotations.append(wider_face.ImageAnnotation(image_name, [
          wider_face.FaceAnnotation(int(x1), int(y1), int(x2 - x1), int(y2 - y1))
          for x1, y1, x2, y2 in scaled]))
  wider_face.write_bbx_gt(wider_face.split_file(root, "val"), annotations)
  wider_ground_truth.write_eval_ground_truth(
      os.path.join(root, "eval_tools", "ground_truth"),
      wider_face.eval_ground_truth_from_annotations(annotations))
  return [a.name for a in annotations]


def main(argv):
  del argv
  # pylint: disable=g-import-not-at-top
  from tinyfaces_tf import atomic
  from tinyfaces_tf import boxes as box_ops
  from tinyfaces_tf import export
  from tinyfaces_tf import proposals as proposals_lib
  from tinyfaces_tf import viz
  from tinyfaces_tf.data import result_files
  from tinyfaces_tf.data import wider_face
  from tinyfaces_tf.detection import jobs
  from tinyfaces_tf.evaluation import report
  with open(FACES_FILE) as f:
    photos = json.load(f)["photos"]
  detectors = {OURS: export.SavedModelDetector(FLAGS.model, score_fusion="none"),
               FUSED: export.SavedModelDetector(FLAGS.model, score_fusion="product")}
  proposer = proposals_lib.make_proposer(FLAGS.proposer)
  table = {}
  for height in FACE_HEIGHTS + (POOLED_HEIGHTS,):
    pooled = isinstance(height, tuple)
    root = os.path.join(FLAGS.out, "faces_pooled" if pooled else f"faces_{height}px")
    names = write_root(root, photos, height if pooled else (height,))
    dataset = wider_face.WiderFace(root)
    dirs = {PROPOSER: os.path.join(root, "results", "proposer")}
    jobs.propose_split(proposer, dataset.images_dir("val"), names, dirs[PROPOSER])
    for label, detector in detectors.items():
      dirs[label] = os.path.join(root, "results", label.replace(" ", "_"))
      jobs.detect_split(detector, dataset.images_dir("val"), names,
                        proposals_lib.make_proposer(f"results:{dirs[PROPOSER]}"), dirs[label])
    aps = report.evaluate_dirs(dirs, dataset.ground_truth_dir, os.path.join(root, "eval"))
    table["pooled" if pooled else height] = {label: aps[label][SETTING] for label in dirs}
    if pooled:
      continue
    # The detections of ours on every photograph of this size, side by side.
    ours = result_files.read_result_dir(dirs[OURS])
    for annotation in dataset.annotations("val"):
      boxes_xywh, scores = ours[f"{annotation.event}/{annotation.stem}"]
      viz.draw_detections(dataset.read_image("val", annotation.name),
                          box_ops.xywh_to_xyxy(boxes_xywh), scores, annotation.boxes_xyxy,
                          os.path.join(FLAGS.results_dir, "real_photos",
                                       f"{annotation.stem}_{height}px.png"), score_threshold=0.5)
  lines = ["# The demo export on real photographs", "",
           f"`python experiments/real_photos.py --model={FLAGS.model} --proposer={FLAGS.proposer}`"
           f": {len(photos)} photographs ({', '.join(sorted(photos))}), each shrunk so its face is "
           f"about {', '.join(map(str, FACE_HEIGHTS))} px high; official WIDER {SETTING.title()} "
           "AP per size (one face per photograph, so each AP rests on "
           f"{len(photos)} faces). Detections (score >= 0.5): `real_photos/`.", "",
           f"| face height | {PROPOSER} ({FLAGS.proposer}) | {OURS} | {OURS} x {PROPOSER} |",
           "|---|---|---|---|"]
  sizes = [h for h in table if h != "pooled"]
  for height in sizes:
    aps = table[height]
    lines.append(f"| {height} px | {aps[PROPOSER]:.3f} | {aps[OURS]:.3f} | {aps[FUSED]:.3f} |")
  mean = {label: float(np.mean([table[h][label] for h in sizes]))
          for label in (PROPOSER, OURS, FUSED)}
  lines.append(f"| mean | {mean[PROPOSER]:.3f} | {mean[OURS]:.3f} | {mean[FUSED]:.3f} |")
  aps = table["pooled"]
  lines.append(f"| pooled, {POOLED_HEIGHTS[0]}-{POOLED_HEIGHTS[-1]} px every "
               f"{POOLED_HEIGHTS[1] - POOLED_HEIGHTS[0]} px ({len(POOLED_HEIGHTS) * len(photos)} "
               f"faces) | {aps[PROPOSER]:.3f} | {aps[OURS]:.3f} | {aps[FUSED]:.3f} |")
  os.makedirs(FLAGS.results_dir, exist_ok=True)
  path = os.path.join(FLAGS.results_dir, "real_photos.md")
  with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")
  atomic.write_json(os.path.join(FLAGS.results_dir, "real_photos.json"), {
      "model": FLAGS.model, "proposer": FLAGS.proposer, "setting": SETTING,
      "ap": {str(h): aps for h, aps in table.items()}, "mean": mean})
  print("\n".join(lines))


if __name__ == "__main__":
  app.run(main)
