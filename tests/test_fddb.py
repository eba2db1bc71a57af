"""FDDB layout reader/writer, continuous ROC, ROC files and the WIDER -> FDDB conversion."""
import filecmp
import itertools
import json
import os

import numpy as np
import pytest
from matplotlib.path import Path

from tinyfaces_tf.data import demo
from tinyfaces_tf.data import fddb as fddb_data
from tinyfaces_tf.data import wider_face
from tinyfaces_tf.evaluation import fddb

FOLD_01 = "2002/08/11/big/img_591\n2002/08/26/big/img_265\n"
ELLIPSES_01 = """2002/08/11/big/img_591
1
123.583300 85.549500 1.265839 269.693400 161.781200  1
2002/08/26/big/img_265
3
67.363819 44.511485 -1.476417 105.249970 87.209036  1
41.936870 27.064477 1.471906 184.070915 129.345601  1
70.993052 43.355200 1.370217 340.894300 117.498951  1
"""


def _fddb_root(tmp_path, fold_01=FOLD_01, ellipses_01=ELLIPSES_01):
  folds = tmp_path / "fddb" / "FDDB-folds"
  folds.mkdir(parents=True, exist_ok=True)
  (folds / "FDDB-fold-01.txt").write_text(fold_01)
  (folds / "FDDB-fold-01-ellipseList.txt").write_text(ellipses_01)
  (folds / "FDDB-fold-02.txt").write_text("2003/01/13/big/img_1\n")
  (folds / "FDDB-fold-02-ellipseList.txt").write_text(
      "2003/01/13/big/img_1\n1\n10 5 1.5707963 40 50  1\n")
  return tmp_path / "fddb"


def test_reader_parses_hand_written_folds(tmp_path):
  root = _fddb_root(tmp_path)
  data = fddb_data.Fddb(root)
  assert data.folds() == [1, 2]
  assert data.names(1) == ["2002/08/11/big/img_591", "2002/08/26/big/img_265"]
  assert data.all_names() == data.names(1) + ["2003/01/13/big/img_1"]
  assert data.image_path("2002/08/11/big/img_591") == os.path.join(
      str(root), "originalPics", "2002", "08", "11", "big", "img_591.jpg")
  ellipses = data.ellipses(1)
  assert list(ellipses) == data.names(1)
  np.testing.assert_array_equal(ellipses["2002/08/11/big/img_591"],
                                [[123.5833, 85.5495, 1.265839, 269.6934, 161.7812]])
  assert ellipses["2002/08/26/big/img_265"].shape == (3, 5)
  np.testing.assert_array_equal(ellipses["2002/08/26/big/img_265"][1],
                                [41.936870, 27.064477, 1.471906, 184.070915, 129.345601])
  assert data.num_faces() == 5 and data.num_faces([1]) == 4
  assert data.check_images([2]) == [data.image_path("2003/01/13/big/img_1")]
  with pytest.raises(FileNotFoundError, match="img_1.jpg"):
    data.require_images([2])


@pytest.mark.parametrize("fold_01, ellipses_01, where", [
    (FOLD_01, ELLIPSES_01.replace("44.511485 -1.476417", "44.511485 x"),
     "FDDB-fold-01-ellipseList.txt:6"),
    (FOLD_01, ELLIPSES_01.replace("\n3\n", "\nthree\n"), "FDDB-fold-01-ellipseList.txt:5"),
    (FOLD_01, ELLIPSES_01.replace("img_265\n3", "img_999\n3"), "FDDB-fold-01-ellipseList.txt:4"),
    ("2002/08/11/big/img_591\n2002/08/26/big/img_265.jpg\n", ELLIPSES_01, "FDDB-fold-01.txt:2"),
    ("../../etc/img_591\n", ELLIPSES_01, "FDDB-fold-01.txt:1"),
    ("2002/08/11/big/img_591\n\n2002/08/11/big/img_591\n", ELLIPSES_01, "FDDB-fold-01.txt:3"),
])
def test_malformed_line_names_file_and_line(tmp_path, fold_01, ellipses_01, where):
  data = fddb_data.Fddb(_fddb_root(tmp_path, fold_01, ellipses_01))
  with pytest.raises(ValueError, match=where):
    data.ellipses(1)


def test_ellipse_list_must_follow_fold_list_and_files_must_exist(tmp_path):
  swapped = "2002/08/26/big/img_265\n2002/08/11/big/img_591\n"
  with pytest.raises(ValueError, match="not in the order of"):
    fddb_data.Fddb(_fddb_root(tmp_path, fold_01=swapped)).ellipses(1)
  more = FOLD_01 + "2002/08/26/big/img_7\n"
  with pytest.raises(ValueError, match="no ellipse block, first '2002/08/26/big/img_7'"):
    fddb_data.Fddb(_fddb_root(tmp_path, fold_01=more)).ellipses(1)
  data = fddb_data.Fddb(_fddb_root(tmp_path))
  with pytest.raises(FileNotFoundError, match="FDDB-fold-03.txt"):
    data.names(3)
  os.remove(data.ellipse_file(2))
  with pytest.raises(FileNotFoundError, match="FDDB-fold-02-ellipseList.txt"):
    data.ellipses(2)
  with pytest.raises(FileNotFoundError, match="nowhere"):
    fddb_data.Fddb(tmp_path / "nowhere")
  with pytest.raises(ValueError, match="fold"):
    data.names(0)


def _cv_polygon_mask(ellipse, size):
  """Pixel-centre mask of an ellipse outlined as OpenCV's ellipse2Poly does: a point at parameter
  t is c + ra cos t (cos a, sin a) + rb sin t (-sin a, cos a), with cvEllipse's angle in degrees
  equal to the FDDB angle (the official reader and display cancel their two flips)."""
  ra, rb, angle, cx, cy = ellipse
  t = np.linspace(0, 2 * np.pi, 2000, endpoint=False)
  ca, sa = np.cos(angle), np.sin(angle)
  px = cx + ra * np.cos(t) * ca - rb * np.sin(t) * sa
  py = cy + ra * np.cos(t) * sa + rb * np.sin(t) * ca
  ys, xs = np.mgrid[0:size, 0:size]
  inside = Path(np.stack([px, py], 1)).contains_points(np.stack([xs.ravel(), ys.ravel()], 1))
  return inside.reshape(size, size)


def _rect_mask(box, size):
  x, y, w, h = box
  ys, xs = np.mgrid[0:size, 0:size]
  return (xs >= x) & (xs <= x + w) & (ys >= y) & (ys <= y + h)


def _iou(a, b):
  return np.sum(a & b) / np.sum(a | b)


def test_region_overlaps_follow_the_official_angle_convention():
  # Major axis pointing down-right in the image (y down): a box there overlaps, its mirror
  # image about the horizontal axis (up-right) does not. A flipped convention swaps them.
  ellipse = [40, 12, np.pi / 4, 100, 100]
  down_right, up_right = [115, 115, 20, 20], [115, 65, 20, 20]
  got = fddb.region_overlaps([ellipse], [down_right, up_right])[0]
  mask = _cv_polygon_mask(ellipse, 200)
  want = [_iou(mask, _rect_mask(down_right, 200)), _iou(mask, _rect_mask(up_right, 200))]
  assert want[0] > 0.1 and want[1] == 0.0
  np.testing.assert_allclose(got, want, atol=0.01)


def _circle_mask(cx, cy, r, size=400):
  ys, xs = np.mgrid[0:size, 0:size]
  return (xs - cx) ** 2 + (ys - cy) ** 2 <= r ** 2


def test_continuous_roc_hand_worked():
  # Circles r = 20: image a at (50, 50) and (150, 50), image b at (50, 50); 3 faces.
  # A circle holds 1257 pixel centres (Gauss' circle count N(20)); its bounding box
  # [30, 30, 40, 40] fills 41 x 41 = 1681 pixels and contains it: overlap 1257 / 1681.
  # The box [150, 30, 40, 40] holds the right half of the second circle with its centre
  # column: (1257 - 41) / 2 + 41 = 649 pixels, union 1257 + 1681 - 649: overlap 0.284 < 0.5,
  # so it is a discrete false positive that still adds 0.284 to the continuous score.
  assert np.sum(_circle_mask(50, 50, 20)) == 1257
  tight, half = 1257 / 1681, 649 / (1257 + 1681 - 649)
  assert _iou(_circle_mask(150, 50, 20), _rect_mask([150, 30, 40, 40], 400)) == pytest.approx(half)
  ellipses = {"a": np.array([[20, 20, 0, 50, 50], [20, 20, 0, 150, 50]]),
              "b": np.array([[20, 20, 0, 50, 50]])}
  detections = {
      "a": (np.array([[30, 30, 40, 40], [150, 30, 40, 40], [30, 30, 40, 40]]),
            np.array([0.9, 0.8, 0.5])),
      "b": (np.array([[300, 300, 10, 10], [30, 30, 40, 40]]), np.array([0.7, 0.6]))}
  roc = fddb.evaluate_fddb(ellipses, detections)
  np.testing.assert_allclose(roc.thresholds, [0.9, 0.8, 0.7, 0.6, 0.5])
  np.testing.assert_array_equal(roc.true_positives, [1, 1, 1, 2, 2])
  # The FP axis is the official one, shared by both curves: detections minus discrete TPs.
  np.testing.assert_array_equal(roc.false_positives, [0, 1, 2, 2, 3])
  want = np.array([tight, tight + half, tight + half, 2 * tight + half, 2 * tight + half])
  np.testing.assert_allclose(roc.continuous_true_positives, want, rtol=1e-12)
  np.testing.assert_allclose(roc.rate("continuous"), want / 3, rtol=1e-12)
  assert roc.detection_rate_at(2, score="continuous") == pytest.approx((2 * tight + half) / 3)
  assert fddb.detection_rate_at(roc, 0, "continuous") == pytest.approx(tight / 3)
  assert roc.detection_rate_at(2) == pytest.approx(2 / 3)
  with pytest.raises(ValueError, match="unknown FDDB score"):
    roc.rate("mixed")


def _brute_force_match(overlaps):
  """Maximum-sum one-to-one assignment by enumeration (faces x detections, both small)."""
  k, n = overlaps.shape
  padded = np.concatenate([overlaps, np.zeros((k, k))], axis=1)  # k "no detection" columns
  best = max(itertools.permutations(range(n + k), k),
             key=lambda cols: sum(padded[i, c] for i, c in enumerate(cols)))
  pairs = np.array([padded[i, c] for i, c in enumerate(best)])
  return pairs[pairs > 0]


def test_continuous_score_is_the_matched_overlap_sum():
  rng = np.random.default_rng(3)
  faces = np.array([[20, 16, np.pi / 2, 60, 60], [15, 15, 0, 130, 70], [25, 18, 1.4, 90, 150]])
  centres = faces[rng.integers(0, 3, 6), 3:] + rng.normal(0, 10, (6, 2))
  sizes = rng.uniform(20, 45, (6, 2))
  boxes = np.concatenate([centres - sizes / 2, sizes], axis=1)
  scores = np.linspace(0.9, 0.4, 6)
  roc = fddb.evaluate_fddb({"img": faces}, {"img": (boxes, scores)})
  overlaps = fddb.region_overlaps(faces, boxes)
  assert np.sum(overlaps > 0.5) >= 2 and np.sum((overlaps > 0) & (overlaps <= 0.5)) >= 2
  for n in range(1, 7):
    pairs = _brute_force_match(overlaps[:, :n])
    assert roc.true_positives[n - 1] == np.sum(pairs > 0.5)
    assert roc.continuous_true_positives[n - 1] == pytest.approx(np.sum(pairs))
    # Each matched pair adds at most 1: continuous TPR <= fraction of faces matched.
    assert roc.rate("continuous")[n - 1] <= len(pairs) / 3 + 1e-12
    assert roc.continuous_true_positives[n - 1] >= roc.true_positives[n - 1] / 2


def test_roc_files_and_figure(tmp_path):
  ellipses = {"a": np.array([[20, 20, 0, 50, 50], [20, 20, 0, 150, 50]])}
  roc = fddb.evaluate_fddb(ellipses, {"a": (np.array([[30, 30, 40, 40], [150, 30, 40, 40]]),
                                            np.array([0.9, 0.8]))})
  disc, cont = fddb.write_roc_files(roc, tmp_path / "roc", prefix="ours-")
  assert disc.endswith("ours-DiscROC.txt") and cont.endswith("ours-ContROC.txt")
  # Official order: ascending thresholds; DiscROC rows carry the threshold as third column.
  disc_rows = [line.split() for line in open(disc).read().splitlines()]
  assert [len(r) for r in disc_rows] == [3, 3]
  assert [float(r[2]) for r in disc_rows] == [0.8, 0.9]
  tpr, fp = fddb.read_roc_file(disc)
  np.testing.assert_allclose(tpr, roc.true_positive_rate[::-1], rtol=1e-9)
  np.testing.assert_array_equal(fp, roc.false_positives[::-1])
  tpr, fp = fddb.read_roc_file(cont)
  np.testing.assert_allclose(tpr, roc.rate("continuous")[::-1], rtol=1e-9)
  (tmp_path / "bad.txt").write_text("0.5 1\n0.5 two\n")
  with pytest.raises(ValueError, match="bad.txt:2"):
    fddb.read_roc_file(tmp_path / "bad.txt")
  png = fddb.plot_fddb_roc({"ours": roc}, tmp_path / "fig" / "roc.png", max_fp=10, fp_at=1)
  with open(png, "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  assert "TPR 0.500 at 1 FP" in fddb.roc_label("ours", roc, "discrete", 1)
  assert not [n for n in os.listdir(tmp_path / "fig") if n.endswith(".tmp")]


NAMES = ["2002/08/11/big/img_591", "2002/08/26/big/img_265", "2003/01/13/big/img_1"]


def _xyxy_detections():
  rng = np.random.default_rng(0)
  xy = rng.uniform(0, 300, (4, 2)).astype(np.float32)
  wh = rng.uniform(5, 80, (4, 2)).astype(np.float32)
  return {NAMES[0]: (np.concatenate([xy[:3], xy[:3] + wh[:3]], 1), rng.random(3)),
          NAMES[2]: (np.array([[10, 20, 30, 60]], np.float32), np.array([0.5]))}


def test_fold_writer_round_trip_through_read_detections(tmp_path):
  dets = _xyxy_detections()
  path = fddb_data.write_fold_detections(tmp_path / "out", 3, NAMES, dets)
  assert path == str(tmp_path / "out" / "fold-03-out.txt")
  assert not [n for n in os.listdir(tmp_path / "out") if n != "fold-03-out.txt"]
  back = fddb.read_detections(path)
  assert list(back) == NAMES  # fold order, every image, as the official binary reads it
  for name, (xyxy, scores) in dets.items():
    xyxy = xyxy.astype(np.float64)
    np.testing.assert_array_equal(back[name][0], np.c_[xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]])
    np.testing.assert_array_equal(back[name][1], scores)
  assert back[NAMES[1]][0].shape == (0, 4)
  lines = open(path).read().splitlines()
  assert lines[-3:] == [NAMES[2], "1", "10.0 20.0 20.0 40.0 0.5"]
  assert lines[lines.index(NAMES[1]) + 1] == "0"
  with pytest.raises(ValueError, match="not in the fold"):
    fddb_data.write_fold_detections(tmp_path / "out", 3, NAMES[:2], dets)
  with pytest.raises(ValueError, match="non-finite"):
    fddb_data.write_fold_detections(tmp_path / "out", 3, NAMES,
                                    {NAMES[0]: (np.array([[0, 0, np.nan, 1]]), np.array([1.0]))})


def test_per_image_files_resume_and_gather(tmp_path):
  dets = _xyxy_detections()
  results = tmp_path / "per_image"
  path = fddb_data.write_image_detections(results, NAMES[0], *dets[NAMES[0]])
  assert path == str(results / "2002" / "08" / "11" / "big" / "img_591.txt")
  assert open(path).read().splitlines()[:2] == [NAMES[0], "3"]
  assert fddb_data.pending_names(results, NAMES) == NAMES[1:]
  with pytest.raises(FileNotFoundError, match="2 of 3 image"):
    fddb_data.gather_fold_detections(results, tmp_path / "out", 1, NAMES)
  fddb_data.write_image_detections(results, NAMES[1], np.zeros((0, 4)), np.zeros(0))
  fddb_data.write_image_detections(results, NAMES[2], *dets[NAMES[2]])
  assert fddb_data.pending_names(results, NAMES) == []
  gathered = fddb_data.gather_fold_detections(results, tmp_path / "out", 1, NAMES)
  direct = fddb_data.write_fold_detections(tmp_path / "direct", 1, NAMES, dets)
  assert open(gathered).read() == open(direct).read()
  os.remove(fddb_data.image_result_path(results, NAMES[2]))
  partial = fddb_data.gather_fold_detections(results, tmp_path / "out", 1, NAMES,
                                             allow_missing=True)
  assert fddb.read_detections(partial)[NAMES[2]][1].shape == (0,)
  with pytest.raises(ValueError, match="relative path"):
    fddb_data.image_result_path(results, "../escape")


@pytest.mark.parametrize("h", [1, 2, 3, 5, 8, 10, 13, 20, 40, 80])
def test_ellipse_from_box_overlaps_its_box(h):
  boxes = np.array([[17, 23, max(1, round(0.75 * h)), h], [40, 30, h, h],
                    [60, 50, h + 5, h]], np.float64)
  ellipses = fddb_data.ellipses_from_boxes(boxes)
  np.testing.assert_allclose(ellipses[:2, 2], np.pi / 2)  # upright: major axis along y
  assert ellipses[2, 2] == 0.0  # wider than tall: major axis along x
  assert np.all(ellipses[:, 0] >= ellipses[:, 1])
  np.testing.assert_allclose(ellipses[:, 3:], boxes[:, :2] + boxes[:, 2:] / 2)
  got = np.diag(fddb.region_overlaps(ellipses, boxes))
  assert np.all(got > 0.75), got
  if h >= 10:  # against an independent rasterisation (OpenCV's outline, filled)
    size = int(boxes[:, :2].max() + 2 * h + 20)
    want = [_iou(_cv_polygon_mask(e, size), _rect_mask(b, size)) for e, b in zip(ellipses, boxes)]
    np.testing.assert_allclose(got, want, atol=0.03)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
  base = tmp_path_factory.mktemp("wider_to_fddb")
  demo.make_demo_dataset(base / "wider", train_images=0, val_images=6, test_images=0)
  summary = fddb_data.write_fddb_layout_from_wider(base / "wider", base / "fddb")
  return base, summary


def test_wider_to_fddb_gives_every_valid_face_one_ellipse(converted):
  base, summary = converted
  wider = wider_face.WiderFace(base / "wider")
  annotations = {a.name: a for a in wider.annotations("val")}
  data = fddb_data.Fddb(base / "fddb")
  assert data.folds() == list(range(1, 7))  # 6 images: fewer folds than 10
  assert summary["images"] == 6 and summary["folds"] == 6
  assert json.load(open(base / "fddb" / fddb_data.META_FILE))["names"] == summary["names"]
  assert not os.path.exists(base / "fddb" / ".fddb_incomplete")
  assert sorted(summary["names"].values()) == sorted(annotations)
  ellipses = data.all_ellipses()
  assert sorted(ellipses) == sorted(summary["names"])
  assert data.check_images() == []
  total = 0
  for name, rows in ellipses.items():
    annotation = annotations[summary["names"][name]]
    assert filecmp.cmp(data.image_path(name), wider.image_path("val", annotation.name),
                       shallow=False)
    boxes = annotation.boxes_xywh[annotation.valid].astype(np.float64)
    assert len(rows) == len(boxes)
    total += len(boxes)
    # Upright (the demo's faces are never wider than tall), centred on the box.
    np.testing.assert_allclose(rows[:, 2], np.pi / 2, atol=1e-6)
    np.testing.assert_allclose(rows[:, 3:], boxes[:, :2] + boxes[:, 2:] / 2, atol=1e-6)
    assert np.all(rows[:, 0] >= rows[:, 1])
    assert np.all(np.diag(fddb.region_overlaps(rows, boxes)) > 0.5)
  assert total == summary["faces"] == data.num_faces() > 0
  invalid = sum(int(np.sum(~a.valid)) for a in annotations.values())
  assert summary["dropped_invalid_faces"] == invalid


def test_ground_truth_boxes_as_detections_score_perfectly(converted, tmp_path):
  base, summary = converted
  data = fddb_data.Fddb(base / "fddb")
  wider = {a.name: a for a in wider_face.WiderFace(base / "wider").annotations("val")}
  for fold in data.folds():
    dets = {}
    for name in data.names(fold):
      annotation = wider[summary["names"][name]]
      xyxy = annotation.boxes_xyxy[annotation.valid]
      dets[name] = (xyxy, np.ones(len(xyxy)))
    fddb_data.write_fold_detections(tmp_path, fold, data.names(fold), dets)
  roc = fddb_data.evaluate_fold_outputs(data, tmp_path)
  assert roc.num_faces == summary["faces"]
  assert roc.detection_rate_at(fp=0) == 1.0
  np.testing.assert_array_equal(roc.false_positives, [0])
  assert roc.detection_rate_at(fp=0, score="continuous") > 0.75
  # The official binary reads folds in lockstep: a reordered out file is refused.
  path = fddb_data.fold_out_file(tmp_path, 1)
  with open(path, "a") as f:
    f.write("2002/08/01/big/img_999\n0\n")
  with pytest.raises(ValueError, match="fold-01-out.txt: image '2002/08/01/big/img_999'"):
    fddb_data.evaluate_fold_outputs(data, tmp_path)


def test_wider_to_fddb_refuses_foreign_folders_and_replaces_its_own(converted, tmp_path):
  base, summary = converted
  foreign = tmp_path / "foreign"
  foreign.mkdir()
  (foreign / "notes.txt").write_text("mine\n")
  with pytest.raises(FileExistsError, match="fddb_info.json"):
    fddb_data.write_fddb_layout_from_wider(base / "wider", foreign)
  assert os.listdir(foreign) == ["notes.txt"]
  # An interrupted run (marker present) is redone; a complete one is replaced, other files kept.
  out = tmp_path / "again"
  (out / "originalPics" / "stale").mkdir(parents=True)
  (out / ".fddb_incomplete").write_text("")
  first = fddb_data.write_fddb_layout_from_wider(base / "wider", out, folds=4, link=False)
  assert not os.path.exists(out / "originalPics" / "stale")
  assert first["folds"] == 4 and first["images_placed_by"] == ["copy"]
  assert [len(fddb_data.Fddb(out).names(f)) for f in range(1, 5)] == [2, 2, 1, 1]
  (out / "detections.txt").write_text("kept\n")
  second = fddb_data.write_fddb_layout_from_wider(base / "wider", out)
  assert second["folds"] == 6 and (out / "detections.txt").read_text() == "kept\n"
  assert not os.path.exists(out / "FDDB-folds" / "FDDB-fold-07.txt")
  with pytest.raises(ValueError, match="split"):
    fddb_data.write_fddb_layout_from_wider(base / "wider", tmp_path / "test", split="test")
