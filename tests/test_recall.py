"""A proposer's recall by face height, against a hand-worked example."""
import math

import numpy as np
import pytest

from tinyfaces_tf.data import wider_face
from tinyfaces_tf.evaluation import recall


def face(x, y, w, h, invalid=0):
  return wider_face.FaceAnnotation(x, y, w, h, invalid=invalid)


def test_recall_by_height_worked_by_hand():
  annotations = [
      wider_face.ImageAnnotation("0--a/0_a_1.jpg", [
          face(10, 10, 10, 12),     # 12 px: found (same box)
          face(50, 50, 20, 20),     # 20 px: missed (proposal IoU 0.25)
          face(100, 10, 40, 40),    # 40 px: found (IoU 0.81)
          face(200, 200, 8, 8, invalid=1)]),  # invalid: not counted
      wider_face.ImageAnnotation("0--a/0_a_2.jpg", [face(0, 0, 70, 70)]),  # no result file
  ]
  predictions = {"0--a/0_a_1": (np.array([[10, 10, 10, 12],     # xywh
                                          [50, 50, 10, 10],     # a quarter of the 20 px face
                                          [102, 12, 36, 36]], np.float32),
                                np.array([0.1, 0.9, 0.5], np.float32))}
  out = recall.recall_by_height(annotations, predictions)
  assert out["0-16px"] == {"recall": 1.0, "faces": 1}
  assert out["16-32px"] == {"recall": 0.0, "faces": 1}
  assert out["32-64px"] == {"recall": 1.0, "faces": 1}
  assert out[">=64px"] == {"recall": 0.0, "faces": 1}
  assert out["all"] == {"recall": pytest.approx(0.5), "faces": 4}
  empty = recall.recall_by_height(annotations[1:], {}, bins=((0, 16),))
  assert math.isnan(empty["0-16px"]["recall"]) and empty["0-16px"]["faces"] == 0
