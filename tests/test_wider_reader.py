"""tinyfaces_tf.data.wider on hand-written files in the official WIDER FACE layout."""
import os

import numpy as np
import pytest

from tinyfaces_tf.data import wider_face

# Official layout: name, count, then "x1 y1 w h blur expression illumination invalid occlusion
# pose " (trailing space) per face; a 0-face image has count 0 and one line of ten zeros.
BBX_GT = (
    "0--Parade/0_Parade_marchingband_1_849.jpg\n"
    "1\n"
    "449 330 122 149 0 0 0 0 0 0 \n"
    "0--Parade/0_Parade_Parade_0_904.jpg\n"
    "2\n"
    "361 98 263 339 2 1 1 0 2 1 \n"
    "78 221 7 8 1 0 0 1 1 0 \n"
    "1--Handshaking/1_Handshaking_Handshaking_1_94.jpg\n"
    "0\n"
    "0 0 0 0 0 0 0 0 0 0 \n"
    "1--Handshaking/1_Handshaking_Handshaking_1_35.jpg\n"
    "1\n"
    "5 6 0 0 0 0 0 0 0 0 \n"
)

TEST_LIST = ("0--Parade/0_Parade_marchingband_1_737.jpg\n"
             "0--Parade/0_Parade_Parade_0_194.jpg\n")


def _write(path, text):
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(text.encode())
  return path


def test_reads_every_attribute_zero_face_images_and_invalid_flag(tmp_path):
  annotations = wider_face.read_bbx_gt(_write(tmp_path / "gt.txt", BBX_GT))
  assert [a.name for a in annotations] == [
      "0--Parade/0_Parade_marchingband_1_849.jpg", "0--Parade/0_Parade_Parade_0_904.jpg",
      "1--Handshaking/1_Handshaking_Handshaking_1_94.jpg",
      "1--Handshaking/1_Handshaking_Handshaking_1_35.jpg"]
  assert [len(a.faces) for a in annotations] == [1, 2, 0, 1]
  # Second image, first face "361 98 263 339 2 1 1 0 2 1" field by field.
  face = annotations[1].faces[0]
  assert (face.x, face.y, face.w, face.h) == (361, 98, 263, 339)
  assert (face.blur, face.expression, face.illumination, face.invalid, face.occlusion,
          face.pose) == (2, 1, 1, 0, 2, 1)
  # Second face "78 221 7 8 1 0 0 1 1 0": invalid 1.
  face = annotations[1].faces[1]
  assert (face.blur, face.expression, face.illumination, face.invalid, face.occlusion,
          face.pose) == (1, 0, 0, 1, 1, 0)
  np.testing.assert_array_equal(annotations[1].attribute("occlusion"), [2, 1])
  # x2 = x1 + w, y2 = y1 + h: 361 + 263 = 624, 98 + 339 = 437; 78 + 7 = 85, 221 + 8 = 229.
  np.testing.assert_array_equal(annotations[1].boxes_xyxy,
                                [[361, 98, 624, 437], [78, 221, 85, 229]])
  assert annotations[1].boxes_xyxy.dtype == np.float32
  np.testing.assert_array_equal(annotations[1].valid, [True, False])
  # The 0-face image: its placeholder line is not a face.
  assert annotations[2].boxes_xyxy.shape == (0, 4)
  assert annotations[2].valid.shape == (0,)
  # A 0-size box (WIDER has some) is not a usable face even with invalid 0.
  np.testing.assert_array_equal(annotations[3].valid, [False])
  assert annotations[0].event == "0--Parade"
  assert annotations[0].stem == "0_Parade_marchingband_1_849"


def test_accepts_crlf_and_trailing_blank_lines(tmp_path):
  text = BBX_GT.replace("\n", "\r\n") + "\r\n\r\n"
  annotations = wider_face.read_bbx_gt(_write(tmp_path / "gt.txt", text))
  assert [len(a.faces) for a in annotations] == [1, 2, 0, 1]
  assert annotations[1].faces[1].invalid == 1


@pytest.mark.parametrize("text,line,what", [
    # A face line with 9 fields (line 3).
    ("0--A/0_a.jpg\n1\n1 2 3 4 0 0 0 0 0 \n", 3, "expected 10 integers"),
    # A float where integers belong (line 4).
    ("0--A/0_a.jpg\n2\n1 2 3 4 0 0 0 0 0 0 \n1 2 3.5 4 0 0 0 0 0 0 \n", 4, "expected 10 integers"),
    # A count that is not an integer (line 2).
    ("0--A/0_a.jpg\ntwo\n1 2 3 4 0 0 0 0 0 0 \n", 2, "face count"),
    # A negative count (line 2).
    ("0--A/0_a.jpg\n-1\n", 2, "face count"),
    # Count 1 but two face lines: the second is read where a name belongs (line 4).
    ("0--A/0_a.jpg\n1\n1 2 3 4 0 0 0 0 0 0 \n5 6 7 8 0 0 0 0 0 0 \n", 4, "image name"),
    # Count 2 and the file ends after one face (the missing line is line 4).
    ("0--A/0_a.jpg\n2\n1 2 3 4 0 0 0 0 0 0 \n", 4, "end of file"),
    # A 0-face image whose placeholder line is not all zeros (line 6).
    ("0--A/0_a.jpg\n1\n1 2 3 4 0 0 0 0 0 0 \n0--A/0_b.jpg\n0\n0 0 0 0 1 0 0 0 0 0 \n", 6,
     "placeholder"),
    # A 0-face image without its placeholder line, then the next image (line 3).
    ("0--A/0_a.jpg\n0\n0--A/0_b.jpg\n1\n1 2 3 4 0 0 0 0 0 0 \n", 3, "expected 10 integers"),
    # The same image twice (line 4).
    ("0--A/0_a.jpg\n1\n1 2 3 4 0 0 0 0 0 0 \n0--A/0_a.jpg\n1\n1 2 3 4 0 0 0 0 0 0 \n", 4,
     "listed again"),
    # A blank line in the middle (line 4).
    ("0--A/0_a.jpg\n1\n1 2 3 4 0 0 0 0 0 0 \n\n0--A/0_b.jpg\n1\n1 2 3 4 0 0 0 0 0 0 \n", 4,
     "image name"),
])
def test_malformed_file_names_file_and_line(tmp_path, text, line, what):
  path = _write(tmp_path / "bad_gt.txt", text)
  with pytest.raises(ValueError) as info:
    wider_face.read_bbx_gt(path)
  message = str(info.value)
  assert message.startswith(f"{path}:{line}: "), message
  assert what in message


def test_writer_is_byte_identical_to_official_layout(tmp_path):
  annotations = [
      wider_face.ImageAnnotation("0--Parade/0_Parade_marchingband_1_849.jpg",
                            [wider_face.FaceAnnotation(449, 330, 122, 149)]),
      wider_face.ImageAnnotation("0--Parade/0_Parade_Parade_0_904.jpg", [
          wider_face.FaceAnnotation(361, 98, 263, 339, blur=2, expression=1, illumination=1,
                               invalid=0, occlusion=2, pose=1),
          wider_face.FaceAnnotation(78, 221, 7, 8, blur=1, invalid=1, occlusion=1)]),
      wider_face.ImageAnnotation("1--Handshaking/1_Handshaking_Handshaking_1_94.jpg", []),
      wider_face.ImageAnnotation("1--Handshaking/1_Handshaking_Handshaking_1_35.jpg",
                            [wider_face.FaceAnnotation(5, 6, 0, 0)]),
  ]
  path = wider_face.write_bbx_gt(tmp_path / "out" / "gt.txt", annotations)
  assert (tmp_path / "out" / "gt.txt").read_bytes() == BBX_GT.encode()
  assert wider_face.read_bbx_gt(path) == annotations


def test_test_filelist_round_trip_is_byte_identical(tmp_path):
  path = _write(tmp_path / "list.txt", TEST_LIST)
  names = wider_face.read_test_filelist(path)
  assert names == ["0--Parade/0_Parade_marchingband_1_737.jpg",
                   "0--Parade/0_Parade_Parade_0_194.jpg"]
  wider_face.write_test_filelist(tmp_path / "again.txt", names)
  assert (tmp_path / "again.txt").read_bytes() == TEST_LIST.encode()
  bad = _write(tmp_path / "bad.txt", TEST_LIST + "not an image name\n")
  with pytest.raises(ValueError, match=f"{bad}:3: "):
    wider_face.read_test_filelist(bad)


def test_face_annotation_refuses_non_integers():
  with pytest.raises(ValueError, match="FaceAnnotation.w"):
    wider_face.FaceAnnotation(1, 2, 3.5, 4)


def test_wider_face_root_reports_missing_images_by_path(tmp_path):
  root = tmp_path / "WIDER"
  _write(root / "wider_face_split" / "wider_face_val_bbx_gt.txt", BBX_GT)
  _write(root / "wider_face_split" / "wider_face_test_filelist.txt", TEST_LIST)
  names = [line for line in BBX_GT.splitlines() if line.endswith(".jpg")]
  for name in names[1:]:  # the first val image is left out
    _write(root / "WIDER_val" / "images" / name, "jpeg bytes")
  _write(root / "WIDER_test" / "images" / "0--Parade/0_Parade_Parade_0_194.jpg", "x")
  dataset = wider_face.WiderFace(root)
  assert len(dataset.annotations("val")) == 4
  assert dataset.names("val") == names
  first = os.path.join(str(root), "WIDER_val", "images", "0--Parade",
                       "0_Parade_marchingband_1_849.jpg")
  assert dataset.image_path("val", names[0]) == first
  assert dataset.check_images("val") == [first]
  with pytest.raises(FileNotFoundError, match=first):
    dataset.require_images("val")
  with pytest.raises(FileNotFoundError, match=first):
    dataset.read_image("val", names[0])
  assert dataset.check_images("test") == [
      os.path.join(str(root), "WIDER_test", "images", "0--Parade",
                   "0_Parade_marchingband_1_737.jpg")]
  with pytest.raises(FileNotFoundError, match="wider_face_train_bbx_gt.txt"):
    dataset.annotations("train")
  assert dataset.ground_truth_dir is None
  (root / "eval_tools" / "ground_truth").mkdir(parents=True)
  assert dataset.ground_truth_dir == os.path.join(str(root), "eval_tools", "ground_truth")


def test_eval_ground_truth_settings_follow_face_height(tmp_path):
  # Heights 60 (easy+medium+hard), 35 (medium+hard), 12 (hard), 8 (none: < 10),
  # 70 but invalid (none), 40 with w = 0 (none: empty box).
  faces = [wider_face.FaceAnnotation(0, 0, 50, 60), wider_face.FaceAnnotation(0, 0, 30, 35),
           wider_face.FaceAnnotation(0, 0, 10, 12), wider_face.FaceAnnotation(0, 0, 7, 8),
           wider_face.FaceAnnotation(0, 0, 60, 70, invalid=1), wider_face.FaceAnnotation(0, 0, 0, 40)]
  annotations = [wider_face.ImageAnnotation("0--A/0_a.jpg", faces),
                 wider_face.ImageAnnotation("0--A/0_b.jpg", []),
                 wider_face.ImageAnnotation("1--B/1_c.jpg", [wider_face.FaceAnnotation(1, 2, 3, 30)])]
  gt = wider_face.eval_ground_truth_from_annotations(annotations)
  assert gt.event_list == ["0--A", "1--B"]
  assert gt.file_list == [["0_a", "0_b"], ["1_c"]]
  np.testing.assert_array_equal(gt.gt_lists["easy"][0][0], [1])
  np.testing.assert_array_equal(gt.gt_lists["medium"][0][0], [1, 2])
  np.testing.assert_array_equal(gt.gt_lists["hard"][0][0], [1, 2, 3])
  assert gt.gt_lists["hard"][0][1].size == 0
  assert gt.gt_lists["easy"][1][0].size == 0
  np.testing.assert_array_equal(gt.gt_lists["medium"][1][0], [1])  # h = 30 is >= 30
  np.testing.assert_array_equal(gt.invalid[0][0], [0, 0, 0, 0, 1, 0])
  np.testing.assert_array_equal(gt.face_bbx_list[1][0], [[1, 2, 3, 30]])
