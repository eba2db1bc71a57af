"""COCO as distributed, read through pycocotools: images, categories, boxes, crowd regions.

Layout (what the official archives unpack to)::

  <root>/train2017/<id>.jpg   <root>/val2017/<id>.jpg
  <root>/annotations/instances_{train,val}2017.json
  (2014: train2014/ and val2014/ with instances_{train,val}2014.json, plus the minival and
  valminusminival files of Detectron's split: MTGAN trains on trainval35k = train2014 +
  valminusminival2014 and reports minival2014.)

Categories are mapped, in ascending category id, to contiguous labels 1..K (0 is background),
the order Detectron and the MTGAN heads use. ``iscrowd`` annotations are kept apart as crowd
regions: never positives, and RoIs mostly inside one are ignored rather than negatives
(``roi_sampler``), as COCO's evaluation ignores detections matched to a crowd. Annotations with a
non-finite or non-positive box, an unknown category or an unknown image are skipped with a
warning naming the file and the annotation id (counted in ``skipped_annotations``); malformed
JSON or a file without COCO's top-level keys raises ValueError naming the file.

Image names are "<folder>/<file>" relative to the root (e.g. "val2017/000000000139.jpg"), so one
split may span two folders (trainval35k) and names double as WIDER-style "event/stem" result
paths.
"""
import contextlib
import dataclasses
import functools
import io
import json
import math
import os
import re
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from absl import logging

from tinyfaces_tf import imaging

# split -> ((annotation file, image folder), ...).
SPLITS = {
    "train2017": (("instances_train2017.json", "train2017"),),
    "val2017": (("instances_val2017.json", "val2017"),),
    "train2014": (("instances_train2014.json", "train2014"),),
    "val2014": (("instances_val2014.json", "val2014"),),
    "minival2014": (("instances_minival2014.json", "val2014"),),
    "valminusminival2014": (("instances_valminusminival2014.json", "val2014"),),
    "trainval35k2014": (("instances_train2014.json", "train2014"),
                        ("instances_valminusminival2014.json", "val2014")),
}
ANNOTATIONS_DIR = "annotations"
# A baseline detector's boxes per split, in COCO results format: <root>/proposals/<split>.json
# (read by the RoI builder; written by `tinyfaces-data proposals` or any detector).
PROPOSALS_DIR = "proposals"
# COCOeval's area ranges (params.areaRng), in square pixels: small < 32^2 <= medium < 96^2.
AREA_RANGES = {"small": (0.0, 32.0 ** 2), "medium": (32.0 ** 2, 96.0 ** 2),
               "large": (96.0 ** 2, math.inf)}
_TRAILING_DIGITS = re.compile(r"(\d+)$")


def _pycocotools_coco():
  try:
    from pycocotools.coco import COCO  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError("reading COCO needs pycocotools: pip install 'tinyfaces_tf[coco]'") from e
  return COCO


def size_class(area: float) -> str:
  """"small", "medium" or "large" by COCO's area ranges."""
  for name, (lo, hi) in AREA_RANGES.items():
    if lo <= area < hi:
      return name
  raise ValueError(f"area {area} is outside every COCO area range")


def image_id_from_name(name: str) -> int:
  """COCO's file names end in the zero-padded image id ("000000000139.jpg",
  "COCO_val2014_000000000042.jpg"); the id, or ValueError naming the name."""
  stem = os.path.splitext(os.path.basename(str(name)))[0]
  match = _TRAILING_DIGITS.search(stem)
  if not match:
    raise ValueError(f"{name}: a COCO image name ends in its numeric image id")
  return int(match.group(1))


def load_json(path: str):
  """A JSON file's content; errors name the file (and line for malformed JSON)."""
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: file not found")
  with open(path, encoding="utf-8") as f:
    try:
      return json.load(f)
    except json.JSONDecodeError as e:
      raise ValueError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    except UnicodeDecodeError as e:
      raise ValueError(f"{path}: not UTF-8 text ({e.reason})") from None


@dataclasses.dataclass(frozen=True)
class CocoImage:
  """One image of a split and its annotations (crowd regions apart from the objects).

  Attributes:
    name: "<folder>/<file>" relative to the root.
    image_id: COCO's image id.
    height, width: as the JSON gives them.
    boxes_xyxy: float64 [G, 4] non-crowd objects, pixel x1, y1, x2, y2.
    labels: int32 [G] contiguous labels 1..K.
    crowd_xyxy: float64 [R, 4] iscrowd regions.
    annotation_ids: int64 [G] the objects' annotation ids.
  """
  name: str
  image_id: int
  height: int
  width: int
  boxes_xyxy: np.ndarray
  labels: np.ndarray
  crowd_xyxy: np.ndarray
  annotation_ids: np.ndarray


def _check_keys(obj, keys, where):
  missing = [k for k in keys if not isinstance(obj, dict) or k not in obj]
  if missing:
    raise ValueError(f"{where}: missing {missing}")


def _finite_box(bbox) -> bool:
  try:
    values = [float(v) for v in bbox]
  except (TypeError, ValueError):
    return False
  return len(values) == 4 and all(math.isfinite(v) for v in values) and values[2] > 0 < values[3]


class CocoDataset:
  """COCO (or the project's COCO-format demo) rooted at ``root``; annotation files are read
  once per process and indexed by pycocotools."""

  def __init__(self, root: str):
    self.root = os.fspath(root)
    # (file, annotation id, reason) of every annotation skipped while reading.
    self.skipped_annotations: List[Tuple[str, int, str]] = []

  @staticmethod
  def check_split(split: str):
    if split not in SPLITS:
      raise ValueError(f"unknown COCO split {split!r}; expected one of {sorted(SPLITS)}")

  def annotation_files(self, split: str) -> List[str]:
    self.check_split(split)
    return [os.path.join(self.root, ANNOTATIONS_DIR, f) for f, _ in SPLITS[split]]

  def proposals_file(self, split: str) -> str:
    """<root>/proposals/<split>.json: a baseline's boxes in COCO results format."""
    self.check_split(split)
    return os.path.join(self.root, PROPOSALS_DIR, f"{split}.json")

  @functools.lru_cache(maxsize=None)
  def _index(self, path: str):
    """pycocotools' COCO index of one annotation file, after validation."""
    data = load_json(path)
    _check_keys(data, ("images", "annotations", "categories"), path)
    for image in data["images"]:
      _check_keys(image, ("id", "file_name", "height", "width"), f"{path}: image")
    for category in data["categories"]:
      _check_keys(category, ("id", "name"), f"{path}: category")
    image_ids = {image["id"] for image in data["images"]}
    category_ids = {category["id"] for category in data["categories"]}
    kept = []
    for ann in data["annotations"]:
      _check_keys(ann, ("id", "image_id", "category_id", "bbox"), f"{path}: annotation")
      reason = None
      if not _finite_box(ann["bbox"]):
        reason = f"box {ann['bbox']} is not four finite numbers with positive width and height"
      elif ann["image_id"] not in image_ids:
        reason = f"image id {ann['image_id']} is not in the file's images"
      elif ann["category_id"] not in category_ids:
        reason = f"category id {ann['category_id']} is not in the file's categories"
      if reason:
        logging.warning("%s: annotation %s skipped: %s", path, ann["id"], reason)
        self.skipped_annotations.append((path, ann["id"], reason))
        continue
      ann.setdefault("iscrowd", 0)
      ann.setdefault("area", float(ann["bbox"][2]) * float(ann["bbox"][3]))
      kept.append(ann)
    data["annotations"] = kept
    coco = _pycocotools_coco()()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):  # createIndex prints progress
      coco.createIndex()
    return coco

  def coco(self, split: str) -> List:
    """The pycocotools COCO objects of a split's annotation files."""
    return [self._index(path) for path in self.annotation_files(split)]

  def categories(self, split: str) -> List[dict]:
    """The split's categories sorted by id; every annotation file of a split must agree."""
    files = self.annotation_files(split)
    found = [sorted(({"id": c["id"], "name": c["name"],
                      "supercategory": c.get("supercategory", "")}
                     for c in coco.loadCats(coco.getCatIds())), key=lambda c: c["id"])
             for coco in self.coco(split)]
    for path, cats in zip(files[1:], found[1:]):
      if cats != found[0]:
        raise ValueError(f"{path}: categories differ from those of {files[0]}")
    return found[0]

  def category_ids(self, split: str) -> List[int]:
    """COCO category id of each label 1..K (index label - 1)."""
    return [c["id"] for c in self.categories(split)]

  def label_of_category(self, split: str) -> Dict[int, int]:
    return {cid: label for label, cid in enumerate(self.category_ids(split), start=1)}

  def images(self, split: str) -> List[CocoImage]:
    """Every image of the split (images without annotations too), in image-id order per file."""
    labels = self.label_of_category(split)
    out = []
    for (_, folder), coco in zip(SPLITS[split], self.coco(split)):
      for image_id in sorted(coco.getImgIds()):
        info = coco.loadImgs(image_id)[0]
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
        objects = [a for a in anns if not a["iscrowd"]]
        crowds = [a for a in anns if a["iscrowd"]]
        out.append(CocoImage(
            name=f"{folder}/{info['file_name']}", image_id=int(image_id),
            height=int(info["height"]), width=int(info["width"]),
            boxes_xyxy=_xyxy([a["bbox"] for a in objects]),
            labels=np.asarray([labels[a["category_id"]] for a in objects], np.int32),
            crowd_xyxy=_xyxy([a["bbox"] for a in crowds]),
            annotation_ids=np.asarray([a["id"] for a in objects], np.int64)))
    return out

  def names(self, split: str) -> List[str]:
    return [image.name for image in self.images(split)]

  def image_path(self, name: str) -> str:
    return os.path.join(self.root, *name.split("/"))

  def read_image(self, name: str) -> np.ndarray:
    return imaging.load_image(self.image_path(name))


def _xyxy(bboxes: Sequence) -> np.ndarray:
  boxes = np.asarray(bboxes, np.float64).reshape(-1, 4)
  return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)


# Results ---------------------------------------------------------------------------------------

def results(image_id: int, boxes_xyxy, scores, category_ids) -> List[dict]:
  """COCO results entries ({image_id, category_id, bbox [x, y, w, h], score}) of one image."""
  boxes = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)
  scores = np.asarray(scores, np.float64).reshape(-1)
  category_ids = np.asarray(category_ids, np.int64).reshape(-1)
  if not len(boxes) == len(scores) == len(category_ids):
    raise ValueError(f"{len(boxes)} boxes, {len(scores)} scores, {len(category_ids)} categories")
  return [{"image_id": int(image_id), "category_id": int(c),
           "bbox": [round(float(v), 3) for v in (b[0], b[1], b[2] - b[0], b[3] - b[1])],
           "score": round(float(s), 6)}
          for b, s, c in zip(boxes, scores, category_ids)]


def image_results_path(results_dir: str, name: str) -> str:
  """<results_dir>/<folder>/<stem>.json: one image's results (a job resumes image by image)."""
  folder, file_name = name.replace(os.sep, "/").split("/")
  if folder in ("", ".", "..") or file_name in ("", ".", ".."):
    raise ValueError(f"image name {name!r} is not '<folder>/<file>'")
  return os.path.join(os.fspath(results_dir), folder, os.path.splitext(file_name)[0] + ".json")


def write_image_results(results_dir: str, name: str, boxes_xyxy, scores, category_ids) -> str:
  """Writes one image's detections as a COCO results list; returns the file."""
  from tinyfaces_tf import atomic  # pylint: disable=g-import-not-at-top
  entries = results(image_id_from_name(name), boxes_xyxy, scores, category_ids)
  return atomic.write_text(image_results_path(results_dir, name), json.dumps(entries) + "\n")


def gather_results(results_dir: str, names: Optional[Sequence[str]] = None) -> List[dict]:
  """The COCO results list of a directory's per-image files (of ``names`` only, if given)."""
  results_dir = os.fspath(results_dir)
  if names is None:
    paths = sorted(os.path.join(d, f) for d, _, files in os.walk(results_dir)
                   for f in files if f.endswith(".json") and d != results_dir)
  else:
    paths = [image_results_path(results_dir, n) for n in names]
  out = []
  for path in paths:
    if os.path.isfile(path):
      out.extend(load_json(path))
  return out


@dataclasses.dataclass(frozen=True)
class ImageResults:
  """One image's entries of a COCO results file, highest score first."""
  boxes_xyxy: np.ndarray    # float64 [N, 4]
  scores: np.ndarray        # float64 [N]
  category_ids: np.ndarray  # int64 [N]


def read_results_file(path: str) -> Dict[int, ImageResults]:
  """A COCO results JSON (the list Detectron2, MMDetection and torchvision write) grouped by
  image id. An entry without the four keys, or with a box that is not four finite numbers of
  positive width and height, raises ValueError naming the file and the entry's index."""
  entries = load_json(path)
  if not isinstance(entries, list):
    raise ValueError(f"{path}: a COCO results file is a JSON list of detections")
  grouped: Dict[int, list] = {}
  for k, entry in enumerate(entries):
    _check_keys(entry, ("image_id", "category_id", "bbox", "score"), f"{path}: entry {k}")
    if not _finite_box(entry["bbox"]) or not math.isfinite(float(entry["score"])):
      raise ValueError(f"{path}: entry {k} (image {entry['image_id']}): box {entry['bbox']} / "
                       f"score {entry['score']} is not finite with positive width and height")
    grouped.setdefault(int(entry["image_id"]), []).append(entry)
  out = {}
  for image_id, items in grouped.items():
    items.sort(key=lambda e: -float(e["score"]))  # stable: equal scores keep file order
    out[image_id] = ImageResults(_xyxy([e["bbox"] for e in items]),
                                 np.asarray([e["score"] for e in items], np.float64),
                                 np.asarray([e["category_id"] for e in items], np.int64))
  return out
