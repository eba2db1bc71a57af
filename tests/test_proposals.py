"""Proposers: the shared sort/cap contract, sliding windows, stored result files, the factory and
MTCNN on a real photograph (offline)."""
import os

import numpy as np
import pytest

from tinyfaces_tf import proposals


def np_iou(boxes, box):
  """IoU of xyxy ``boxes`` [N, 4] with one ``box`` (plain NumPy reference)."""
  boxes = np.asarray(boxes, np.float64)
  x1 = np.maximum(boxes[:, 0], box[0])
  y1 = np.maximum(boxes[:, 1], box[1])
  x2 = np.minimum(boxes[:, 2], box[2])
  y2 = np.minimum(boxes[:, 3], box[3])
  inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
  area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
  return inter / (area + (box[2] - box[0]) * (box[3] - box[1]) - inter)


def blank(height, width):
  return np.zeros([height, width, 3], np.uint8)


# ---------------------------------------------------------------- shared contract


def test_make_proposals_sorts_descending_and_keeps_top_k():
  rng = np.random.default_rng(0)
  scores = rng.permutation(50).astype(np.float32) / 50.0  # distinct scores
  boxes = np.stack([scores * 100, scores, scores * 100 + 10, scores + 10], axis=1)
  result = proposals.make_proposals(boxes, scores, max_rois=7)
  np.testing.assert_array_equal(result.scores, np.sort(scores)[::-1][:7])
  # Each box still travels with its own score (x1 = 100 * score by construction).
  np.testing.assert_allclose(result.boxes[:, 0], result.scores * 100, rtol=1e-6)
  assert result.boxes.dtype == np.float32 and result.scores.dtype == np.float32
  assert len(result) == 7


def test_make_proposals_ties_keep_input_order_and_rejects_mismatch():
  boxes = np.arange(16, dtype=np.float32).reshape(4, 4)
  result = proposals.make_proposals(boxes, [0.5, 0.9, 0.5, 0.5], max_rois=None)
  # 0.9 first, then the three 0.5s in input order 0, 2, 3.
  np.testing.assert_array_equal(result.boxes[:, 0], [4, 0, 8, 12])
  with pytest.raises(ValueError, match="3 scores"):
    proposals.make_proposals(boxes, [0.1, 0.2, 0.3], max_rois=10)


# ---------------------------------------------------------------- sliding windows


@pytest.mark.parametrize("x1,y1", [(0, 0), (7, 13), (33, 41), (58, 44), (21.5, 3.25)])
def test_windows_cover_a_20px_box(x1, y1):
  image = blank(64, 78)
  proposer = proposals.SlidingWindowProposer(min_size=10, max_rois=None)
  result = proposer.propose(image)
  box = (x1, y1, x1 + 20, y1 + 20)
  assert np_iou(result.boxes, box).max() >= 0.5


def test_windows_cover_every_square_face_between_min_and_max():
  # The docstring's claim (IoU >= 0.5 for any square face in range), checked on a grid of sizes
  # and positions; the analytic worst case is ~0.6.
  image = blank(90, 90)
  proposer = proposals.SlidingWindowProposer(min_size=10, max_size=80, max_rois=None)
  boxes = proposer.propose(image).boxes
  worst = 1.0
  for size in np.linspace(10, 80, 15):
    for x in np.linspace(0, 90 - size, 7):
      for y in np.linspace(0, 90 - size, 5):
        worst = min(worst, np_iou(boxes, (x, y, x + size, y + size)).max())
  assert worst >= 0.5


def test_windows_geometry_and_determinism():
  image = blank(50, 70)
  proposer = proposals.SlidingWindowProposer(min_size=10, max_size=40, scale_step=2.0,
                                             stride_fraction=0.5, max_rois=None)
  result = proposer.propose(image)
  sizes = result.boxes[:, 2] - result.boxes[:, 0]
  np.testing.assert_array_equal(sizes, result.boxes[:, 3] - result.boxes[:, 1])  # square
  assert sorted(set(sizes.tolist())) == [10.0, 20.0, 40.0]
  assert result.boxes[:, :2].min() >= 0
  assert result.boxes[:, 2].max() <= 70 and result.boxes[:, 3].max() <= 50
  # Hand count, size 10 / stride 5: x starts 0..60 (13), y starts 0..40 (9) -> 117;
  # size 20 / stride 10: x 0..50 (6), y 0..30 (4) -> 24; size 40 / stride 20: x 0, 20, then the
  # flush start 30 (3), y 0 and flush 10 (2) -> 6. Total 147.
  assert len(result) == 117 + 24 + 6
  np.testing.assert_array_equal(result.scores, np.ones(147, np.float32))
  np.testing.assert_array_equal(proposer.propose(image).boxes, result.boxes)


def test_windows_cap_is_an_even_spread():
  image = blank(64, 64)
  full = proposals.SlidingWindowProposer(min_size=8, max_rois=None).propose(image).boxes
  capped = proposals.SlidingWindowProposer(min_size=8, max_rois=40).propose(image).boxes
  assert len(full) > 40 and len(capped) == 40
  # Every kept window is a real window, and both the smallest and the largest scale survive.
  full_rows = {tuple(b) for b in full.tolist()}
  assert all(tuple(b) in full_rows for b in capped.tolist())
  widths = capped[:, 2] - capped[:, 0]
  assert widths.min() == 8.0 and widths.max() == (full[:, 2] - full[:, 0]).max()


def test_windows_bad_arguments():
  with pytest.raises(ValueError, match="scale_step"):
    proposals.SlidingWindowProposer(scale_step=1.0)
  with pytest.raises(ValueError, match="max_size"):
    proposals.SlidingWindowProposer(min_size=20, max_size=10)
  with pytest.raises(ValueError, match="uint8"):
    proposals.SlidingWindowProposer().propose(np.zeros([20, 20, 3], np.float32))


# ---------------------------------------------------------------- stored results


def write_wider_file(path, name, rows):
  """A result file in the official WIDER format, written by hand: name, count, x y w h score."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    f.write(f"{name}\n{len(rows)}\n")
    for row in rows:
      f.write(" ".join(str(v) for v in row) + "\n")


def test_results_proposer_reads_official_format(tmp_path):
  write_wider_file(str(tmp_path / "0--Parade" / "0_Parade_1.txt"), "0_Parade_1",
                   [(10, 20, 30, 40, 0.2), (1, 2, 3, 4, 0.9), (5, 6, 7, 8, 0.5)])
  proposer = proposals.ResultsProposer(str(tmp_path), max_rois=2)
  result = proposer.propose(blank(100, 100), "0--Parade/0_Parade_1.jpg")
  # Top-2 by score: (1,2,3,4 @0.9) -> xyxy (1,2,4,6); (5,6,7,8 @0.5) -> (5,6,12,14).
  np.testing.assert_allclose(result.boxes, [[1, 2, 4, 6], [5, 6, 12, 14]])
  np.testing.assert_allclose(result.scores, [0.9, 0.5])
  # A bare file name (single-image CLI) is found in its event folder.
  np.testing.assert_allclose(proposer.propose(blank(8, 8), "0_Parade_1.jpg").scores, [0.9, 0.5])


def test_results_proposer_round_trip_with_write_result_file(tmp_path):
  from tinyfaces_tf.data import result_files
  rng = np.random.default_rng(3)
  boxes_xywh = np.round(rng.uniform(1, 200, size=[30, 4]), 1).astype(np.float32)
  scores = np.round(rng.uniform(0, 1, size=[30]), 4).astype(np.float32)
  result_files.write_result_file(str(tmp_path), "12--Group/12_Group_7.jpg", boxes_xywh, scores)
  result = proposals.ResultsProposer(str(tmp_path), max_rois=10).propose(
      blank(4, 4), "12--Group/12_Group_7.jpg")
  order = np.argsort(-scores, kind="stable")[:10]
  expected = boxes_xywh[order].copy()
  expected[:, 2:] += expected[:, :2]  # x2 = x + w
  np.testing.assert_allclose(result.boxes, expected, atol=1e-3)
  np.testing.assert_allclose(result.scores, scores[order], atol=1e-4)


def test_results_proposer_missing_file_names_the_path(tmp_path):
  proposer = proposals.ResultsProposer(str(tmp_path))
  expected = os.path.join(str(tmp_path), "3--Riot", "3_Riot_9.txt")
  with pytest.raises(FileNotFoundError, match="3_Riot_9.txt") as info:
    proposer.propose(blank(4, 4), "3--Riot/3_Riot_9.jpg")
  assert expected in str(info.value)
  with pytest.raises(ValueError, match="image's name"):
    proposer.propose(blank(4, 4), None)


# ---------------------------------------------------------------- factory


def test_make_proposer_builds_each_kind(tmp_path):
  windows = proposals.make_proposer("windows", min_size=12, max_rois=50)
  assert isinstance(windows, proposals.SlidingWindowProposer)
  assert windows.min_size == 12 and windows.max_rois == 50
  results = proposals.make_proposer(f"results:{tmp_path}", max_rois=100)
  assert isinstance(results, proposals.ResultsProposer) and results.max_rois == 100
  assert results.results_dir == str(tmp_path)
  mtcnn = proposals.make_proposer("mtcnn")
  assert isinstance(mtcnn, proposals.MtcnnProposer) and mtcnn.max_rois == 600
  assert mtcnn._mtcnn is None  # built lazily, on the first propose()


@pytest.mark.parametrize("spec,match", [
    ("bogus", "'bogus'"),
    ("mtcnn:x", "'mtcnn:x'"),
    ("results:", "give the directory"),
    ("results:/no/such/dir", "/no/such/dir is not a directory"),
    ("", "unknown proposer spec ''"),
])
def test_make_proposer_rejects_bad_specs(spec, match):
  with pytest.raises(ValueError, match=match):
    proposals.make_proposer(spec)


# ---------------------------------------------------------------- MTCNN


def test_mtcnn_finds_the_astronauts_face_offline():
  skimage_data = pytest.importorskip("skimage.data")
  from skimage import feature
  image = skimage_data.astronaut()  # bundled with scikit-image: no download
  # Independent reference: scikit-image's LBP frontal-face cascade (its documented example on this
  # image) finds exactly one face; checked by eye at x 178-265, y 74-161.
  cascade = feature.Cascade(skimage_data.lbp_frontal_face_cascade_filename())
  found = cascade.detect_multi_scale(img=image, scale_factor=1.2, step_ratio=1,
                                     min_size=(60, 60), max_size=(123, 123))
  assert len(found) == 1
  face = found[0]
  reference = (face["c"], face["r"], face["c"] + face["width"], face["r"] + face["height"])
  assert np_iou(np.array([reference]), (178, 74, 265, 161))[0] > 0.8

  proposer = proposals.MtcnnProposer(max_rois=5)
  result = proposer.propose(image)
  assert 1 <= len(result) <= 5
  assert np_iou(result.boxes, reference).max() >= 0.5
  assert np.all(np.diff(result.scores) <= 0) and np.all((result.scores > 0) & (result.scores <= 1))
  assert result.boxes.dtype == np.float32
  assert np.all(result.boxes[:, 2] > result.boxes[:, 0]) and np.all(result.boxes >= 0)
  # No face in a flat grey image (and the same object, built once, is reused).
  model = proposer.mtcnn
  assert len(proposer.propose(np.full([120, 160, 3], 128, np.uint8))) == 0
  assert proposer.mtcnn is model


# ---------------------------------------------------------------- LBP cascade


def hand_labelled_face(photo):
  """The repository's hand-labelled face box of a photograph (experiments/real_photos)."""
  import json
  path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "experiments",
                      "real_photos", "faces.json")
  with open(path) as f:
    return json.load(f)["photos"][photo]["faces"][0]


def test_lbp_cascade_finds_the_astronauts_face_and_scores_by_support():
  from skimage import data
  image = data.astronaut()
  face = hand_labelled_face("astronaut")
  proposer = proposals.make_proposer("lbp", max_rois=50)
  assert isinstance(proposer, proposals.LbpCascadeProposer)
  result = proposer.propose(image)
  assert 1 <= len(result) <= 50
  assert np_iou(result.boxes[:1], face)[0] >= 0.5  # the best-supported window is the face
  assert np.all(np.diff(result.scores) <= 0) and np.all((result.scores > 0) & (result.scores < 1))
  # Score = n / (n + 1) with n the raw windows at IoU >= 0.5 with the kept one (NumPy count).
  raw = proposer.raw_windows(image)
  for box, score in zip(result.boxes[:5], result.scores[:5]):
    n = (np_iou(raw, box) >= 0.5).sum()
    assert score == pytest.approx(n / (n + 1))
  # The kept windows do not overlap each other beyond the NMS threshold.
  for i, box in enumerate(result.boxes):
    assert np.all(np_iou(np.delete(result.boxes, i, axis=0), box) <= proposer.nms_iou + 1e-6)
  assert len(proposer.propose(np.full([120, 160, 3], 128, np.uint8))) == 0


def test_lbp_upscale_reaches_faces_below_the_cascade_window():
  from PIL import Image
  from skimage import data
  x1, y1, x2, y2 = hand_labelled_face("astronaut")
  factor = 16.0 / (y2 - y1)  # the face shrunk to 16 px high, under the cascade's 24 px window
  size = round(512 * factor)
  small = np.asarray(Image.fromarray(data.astronaut()).resize((size, size), Image.LANCZOS))
  face = np.array([x1, y1, x2, y2]) * factor
  found = lambda upscale: proposals.LbpCascadeProposer(upscale=upscale).propose(small).boxes
  assert np.all(np_iou(found(1.0), face) < 0.5) if len(found(1.0)) else True
  assert np_iou(found(2.0), face).max() >= 0.5


def test_lbp_bad_arguments():
  for kwargs in ({"upscale": 0.5}, {"scale_factor": 1.0}, {"step_ratio": 0}, {"nms_iou": 0}):
    with pytest.raises(ValueError):
      proposals.LbpCascadeProposer(**kwargs)
