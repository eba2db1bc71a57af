"""The WIDER demo's FDDB stage (journal Fig. 9 at demo scale): the val split as FDDB folds, the
same detections per FDDB image, the discrete and continuous ROC."""
import os

import numpy as np
import pytest

from tinyfaces_tf import config as config_lib
from tinyfaces_tf import demo_job
from tinyfaces_tf import task as task_lib
from tinyfaces_tf.data import demo
from tinyfaces_tf.data import fddb
from tinyfaces_tf.data import result_files
from tinyfaces_tf.data import wider_face


def test_fddb_stage_carries_the_wider_detections_and_scores_them(tmp_path):
  data = tmp_path / "data"
  demo.make_demo_dataset(data, train_images=1, val_images=4, test_images=0, seed=1)
  annotations = wider_face.WiderFace(data).annotations("val")
  # "perfect": every valid face box as a detection (score 1) -> every face found, no false
  # positive; "shifted": the same boxes moved right by their width -> no box overlap.
  perfect, shifted = tmp_path / "perfect", tmp_path / "shifted"
  for a in annotations:
    boxes = a.boxes_xywh[a.valid]
    result_files.write_result_file(perfect, a.name, boxes, np.ones(len(boxes)))
    moved = boxes + np.stack([boxes[:, 2], 0 * boxes[:, 2], 0 * boxes[:, 2], 0 * boxes[:, 2]], 1)
    result_files.write_result_file(shifted, a.name, moved, np.full(len(boxes), 0.5))
  paths = demo_job.DemoPaths(data_dir=str(data), run_dir=str(tmp_path / "run"))
  os.makedirs(paths.figures)
  task = task_lib.Task(config_lib.get_preset("demo"), paths.data_dir)
  metrics = demo_job.fddb_evaluation(task, {"perfect": str(perfect), "shifted": str(shifted)},
                                     paths)
  assert metrics["perfect"]["discrete_tpr_at_500_fp"] == pytest.approx(1.0)
  assert metrics["shifted"]["discrete_tpr_at_500_fp"] == 0.0
  # The continuous score sums the matched overlaps: a box beside its face still touches the
  # ellipse, which reaches 10 % beyond the box; far below one face's worth per face.
  assert metrics["shifted"]["continuous_tpr_at_500_fp"] < 0.1
  assert os.path.isfile(os.path.join(paths.figures, "fddb_roc.png"))
  # Every FDDB image's detections are its WIDER image's, box for box.
  dataset = fddb.Fddb(paths.fddb_dir)
  wider_of = {os.path.splitext(a.name)[0]: a for a in annotations}
  names = dataset.all_names()
  assert len(names) == len(annotations)
  for name in names:
    boxes, scores = fddb.read_image_detections(paths.results("fddb_shifted"), name)
    wider_name = os.path.splitext(fddb_info_name(paths.fddb_dir, name))[0]
    expected, _ = result_files.read_result_file(result_files.result_path(shifted, wider_name))
    np.testing.assert_allclose(boxes, expected, atol=1e-3)
    assert len(scores) == int(wider_of[wider_name].valid.sum())


def fddb_info_name(root, name):
  import json  # pylint: disable=g-import-not-at-top
  with open(os.path.join(root, fddb.META_FILE)) as f:
    return json.load(f)["names"][name]
