"""eval_tools .mat ground truth and WIDER result files."""
import os

import numpy as np
import pytest
import scipy.io

from tinyfaces_tf.data import result_files
from tinyfaces_tf.data import wider_ground_truth


def _cell(values):
  cell = np.empty((len(values), 1), dtype=object)
  for k, v in enumerate(values):
    cell[k, 0] = v
  return cell


def _example_gt():
  # Event "0--Parade": image a has 0 faces, image b 2 faces; event "1--Handshaking": c has 1 face.
  return wider_ground_truth.EvalGroundTruth.from_images(
      ["0--Parade/a.jpg", "0--Parade/b", "1--Handshaking/c.jpg"],
      [np.zeros((0, 4)), [[1, 2, 30, 40], [50, 60, 7, 8]], [[10, 10, 20, 20]]],
      {"easy": [[], [1], []], "medium": [[], [1, 2], [1]], "hard": [[], [2, 1], [1]]},
      {"blur": [[], [0, 2], [1]], "invalid": [[], [0, 0], [0]]})


def test_written_mats_have_the_official_indexing(tmp_path):
  wider_ground_truth.write_eval_ground_truth(tmp_path, _example_gt())
  assert sorted(os.listdir(tmp_path)) == [
      "wider_easy_val.mat", "wider_face_val.mat", "wider_hard_val.mat", "wider_medium_val.mat"]
  # Indexed exactly as the official python port indexes loadmat's output.
  val = scipy.io.loadmat(str(tmp_path / "wider_face_val.mat"))
  assert val["event_list"].shape == (2, 1)
  assert str(val["event_list"][1][0][0]) == "1--Handshaking"
  assert str(val["file_list"][0][0][1][0][0]) == "b"
  np.testing.assert_array_equal(val["face_bbx_list"][0][0][1][0],
                                [[1, 2, 30, 40], [50, 60, 7, 8]])
  assert val["face_bbx_list"][0][0][0][0].size == 0
  np.testing.assert_array_equal(val["blur_label_list"][0][0][1][0], [[0], [2]])
  hard = scipy.io.loadmat(str(tmp_path / "wider_hard_val.mat"))
  assert hard["gt_list"][0][0][1][0].shape == (2, 1)
  np.testing.assert_array_equal(hard["gt_list"][0][0][1][0][:, 0], [2, 1])
  assert len(hard["gt_list"][1][0][0][0]) == 1
  # The MATLAB wider_eval.m loads boxes and names from the setting file itself.
  assert str(hard["file_list"][1][0][0][0][0]) == "c"


def test_round_trip_with_empty_images_and_settings(tmp_path):
  gt = _example_gt()
  wider_ground_truth.write_eval_ground_truth(tmp_path, gt)
  back = wider_ground_truth.read_eval_ground_truth(tmp_path)
  assert back.event_list == ["0--Parade", "1--Handshaking"]
  assert back.file_list == [["a", "b"], ["c"]]
  assert back.image_names() == ["0--Parade/a", "0--Parade/b", "1--Handshaking/c"]
  assert back.num_images == 3
  assert back.face_bbx_list[0][0].shape == (0, 4)
  np.testing.assert_array_equal(back.face_bbx_list[0][1], [[1, 2, 30, 40], [50, 60, 7, 8]])
  np.testing.assert_array_equal(back.face_bbx_list[1][0], [[10, 10, 20, 20]])
  for setting, expected in {"easy": [[[], [1]], [[]]], "medium": [[[], [1, 2]], [[1]]],
                            "hard": [[[], [2, 1]], [[1]]]}.items():
    got = [[g.tolist() for g in per_event] for per_event in back.gt_lists[setting]]
    assert got == expected, setting
  assert [b.tolist() for b in back.blur[0]] == [[], [0, 2]]
  assert [b.tolist() for b in back.invalid[1]] == [[0]]
  assert back.pose is None and back.occlusion is None


def test_reads_matlab_style_files(tmp_path):
  # Built directly (not with the writer): MATLAB saves [] as a 0x0 double and gt_list as doubles.
  files = _cell([_cell(["img_1", "img_2"])])
  boxes = _cell([_cell([np.array([[1., 2., 3., 4.]]), np.zeros((0, 0))])])
  scipy.io.savemat(str(tmp_path / "wider_face_val.mat"), {
      "event_list": _cell(["7--Cheering"]), "file_list": files, "face_bbx_list": boxes})
  for setting, first in (("easy", np.zeros((0, 0))), ("medium", np.array([[1.]])),
                         ("hard", np.array([[1.]]))):
    scipy.io.savemat(str(tmp_path / f"wider_{setting}_val.mat"),
                     {"gt_list": _cell([_cell([first, np.zeros((0, 0))])])})
  gt = wider_ground_truth.read_eval_ground_truth(str(tmp_path))
  assert gt.image_names() == ["7--Cheering/img_1", "7--Cheering/img_2"]
  assert gt.face_bbx_list[0][1].shape == (0, 4)
  assert gt.gt_lists["easy"][0][0].tolist() == []
  assert gt.gt_lists["hard"][0][0].tolist() == [1]


def test_missing_ground_truth_file_is_named(tmp_path):
  wider_ground_truth.write_eval_ground_truth(tmp_path, _example_gt())
  os.remove(tmp_path / "wider_medium_val.mat")
  with pytest.raises(FileNotFoundError, match="wider_medium_val.mat"):
    wider_ground_truth.read_eval_ground_truth(tmp_path)


def test_inconsistent_ground_truth_is_rejected():
  with pytest.raises(ValueError, match="outside 1..2"):
    wider_ground_truth.EvalGroundTruth.from_images(
        ["e/a"], [np.zeros((2, 4))], {"easy": [[3]], "medium": [[1]], "hard": [[1]]})
  with pytest.raises(ValueError, match="event/stem"):
    wider_ground_truth.EvalGroundTruth.from_images(
        ["noevent.jpg"], [np.zeros((0, 4))], {"easy": [[]], "medium": [[]], "hard": [[]]})


def test_result_file_round_trip(tmp_path):
  boxes = np.array([[1.5, 2.25, 30, 40], [0, 0, 7.125, 8]], np.float32)
  scores = np.array([0.987654321, 1e-7], np.float32)
  path = result_files.write_result_file(tmp_path, "0--Parade/0_Parade_x_1.jpg", boxes, scores)
  assert path == os.path.join(str(tmp_path), "0--Parade", "0_Parade_x_1.txt")
  with open(path) as f:
    lines = f.read().splitlines()
  assert lines[:2] == ["0_Parade_x_1", "2"]
  assert [float(v) for v in lines[2].split()] == pytest.approx([1.5, 2.25, 30, 40, 0.987654321])
  got_boxes, got_scores = result_files.read_result_file(path)
  # One score dtype for every reader: float64, as MATLAB's eval_tools reads the files.
  assert got_boxes.dtype == np.float64 and got_scores.dtype == np.float64
  np.testing.assert_array_equal(got_boxes.astype(np.float32), boxes)
  np.testing.assert_array_equal(got_scores.astype(np.float32), scores)  # %.9g: float32 exact


def test_result_file_with_no_boxes(tmp_path):
  path = result_files.write_result_file(tmp_path, "3--Riot/r", np.zeros((0, 4)), [])
  boxes, scores = result_files.read_result_file(path)
  assert boxes.shape == (0, 4) and scores.shape == (0,)


@pytest.mark.parametrize("content, where", [
    ("a\n2\n1 2 3 4 0.5\n", ":2:"),              # count says 2, one line
    ("a\n1\n1 2 3 4 0.5\n5 6 7 8 0.1\n", ":2:"),  # count says 1, two lines
    ("a\n2\n1 2 3 4 0.5\n1 2 x 4 0.5\n", ":4:"),  # non-number on line 4
    ("a\n1\n1 2 3 4\n", ":3:"),                   # four fields
    ("a\ntwo\n", ":2:"),                          # bad count
    ("a\n", "count line"),
])
def test_malformed_result_file_names_file_and_line(tmp_path, content, where):
  path = tmp_path / "bad.txt"
  path.write_text(content)
  with pytest.raises(ValueError) as info:
    result_files.read_result_file(path)
  assert "bad.txt" in str(info.value) and where in str(info.value)


def test_read_result_dir(tmp_path):
  result_files.write_result_file(tmp_path, "0--Parade/a.jpg", [[1, 2, 3, 4]], [0.5])
  result_files.write_result_file(tmp_path, "1--Handshaking/b", [[5, 6, 7, 8], [1, 1, 1, 1]],
                               [0.25, 0.75])
  (tmp_path / "1--Handshaking" / "notes.md").write_text("not a result")
  (tmp_path / "stray.txt").write_text("outside any event folder")
  results = result_files.read_result_dir(tmp_path)
  assert sorted(results) == ["0--Parade/a", "1--Handshaking/b"]
  np.testing.assert_array_equal(results["1--Handshaking/b"][1], [0.25, 0.75])
  with pytest.raises(FileNotFoundError, match="nope"):
    result_files.read_result_dir(tmp_path / "nope")
