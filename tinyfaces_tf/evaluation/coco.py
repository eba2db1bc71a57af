"""COCO box AP (AP, AP50, AP75, APs, APm, APl) through pycocotools, for the multi-class variant."""
import contextlib
import copy
import io
import json
import os

import numpy as np

METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def _pycocotools():
  try:
    from pycocotools.coco import COCO  # pylint: disable=g-import-not-at-top
    from pycocotools.cocoeval import COCOeval  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError("COCO evaluation needs pycocotools: pip install 'tinyfaces_tf[coco]'") from e
  return COCO, COCOeval


def _load_json(value, what):
  if isinstance(value, (str, os.PathLike)):
    path = os.fspath(value)
    if not os.path.isfile(path):
      raise FileNotFoundError(f"COCO {what} file not found: {path}")
    with open(path) as f:
      try:
        return json.load(f)
      except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
  return copy.deepcopy(value)


def _ground_truth(gt):
  """A pycocotools COCO object from a dict; annotations lacking area/iscrowd get w*h and 0."""
  COCO, _ = _pycocotools()
  for key in ("images", "annotations", "categories"):
    if key not in gt:
      raise ValueError(f"COCO ground truth has no '{key}'")
  for k, ann in enumerate(gt["annotations"]):
    ann.setdefault("id", k + 1)
    ann.setdefault("iscrowd", 0)
    ann.setdefault("area", float(ann["bbox"][2]) * float(ann["bbox"][3]))
  coco = COCO()
  coco.dataset = gt
  with contextlib.redirect_stdout(io.StringIO()):
    coco.createIndex()
  return coco


def _detections(detections):
  """A list of {image_id, category_id, bbox [x, y, w, h], score} dicts.

  Accepts that list, a path to a COCO results JSON, or an [N, 7] array
  (image_id, x, y, w, h, score, category_id) as pycocotools' loadNumpyAnnotations.
  """
  if isinstance(detections, np.ndarray):
    rows = np.asarray(detections, np.float64).reshape(-1, 7)
    return [{"image_id": int(r[0]), "bbox": [float(v) for v in r[1:5]], "score": float(r[5]),
             "category_id": int(r[6])} for r in rows]
  detections = _load_json(detections, "detections")
  for k, det in enumerate(detections):
    missing = {"image_id", "category_id", "bbox", "score"} - set(det)
    if missing:
      raise ValueError(f"COCO detection {k} lacks {sorted(missing)}")
  return detections


def evaluate_coco(gt_json_or_dict, detections, image_ids=None, max_dets=100):
  """COCO bbox AP of ``detections`` against ``gt_json_or_dict`` (path or dict).

  Returns {"AP", "AP50", "AP75", "APs", "APm", "APl"} as floats (COCOeval's stats[0:6];
  -1 where a size range holds no ground truth, 0.0 for everything when there are no detections).
  """
  _, COCOeval = _pycocotools()
  gt = _ground_truth(_load_json(gt_json_or_dict, "ground truth"))
  dets = _detections(detections)
  if not dets:
    return {m: 0.0 for m in METRICS}
  with contextlib.redirect_stdout(io.StringIO()):
    results = gt.loadRes(dets)
    evaluator = COCOeval(gt, results, iouType="bbox")
    if image_ids is not None:
      evaluator.params.imgIds = list(image_ids)
    evaluator.params.maxDets = [1, 10, max_dets]
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
  return {m: float(v) for m, v in zip(METRICS, evaluator.stats[:6])}
