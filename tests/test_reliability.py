"""Hostile-but-realistic inputs: names that leave their root, BOMs, official .mat integer types,
non-finite losses, a corrupt latest checkpoint, outputs over inputs, out-of-range settings."""
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.io
from hypothesis import HealthCheck, given, settings, strategies as st

from tinyfaces_tf import config as config_lib
from tinyfaces_tf import task as task_lib
from tinyfaces_tf.data import result_files
from tinyfaces_tf.data import wider_face
from tinyfaces_tf.data import wider_ground_truth
from tinyfaces_tf.training import loop
from tinyfaces_tf.training import synthetic


@pytest.mark.parametrize("name", ["../outside.jpg", "0--Parade/../../x.jpg", "/etc/x.jpg",
                                  "0--Parade/sub/x.jpg", "..\\\\x/y.jpg", "./x.jpg"])
def test_image_names_that_leave_the_root_are_refused_with_file_and_line(tmp_path, name):
  path = tmp_path / "gt.txt"
  path.write_text(f"0--Parade/ok.jpg\n1\n1 2 3 4 0 0 0 0 0 0 \n{name}\n0\n0 0 0 0 0 0 0 0 0 0 \n")
  with pytest.raises(ValueError, match=rf"{path}:4: expected an image name"):
    wider_face.read_bbx_gt(path)


@pytest.mark.parametrize("name", ["../../etc/passwd", "/tmp/x", "a/b/c", "a/..", "x"])
def test_result_files_stay_inside_their_directory(tmp_path, name):
  with pytest.raises(ValueError, match="event/stem"):
    result_files.write_result_file(tmp_path / "results", name, np.zeros((1, 4)), [1.0])
  assert not any(tmp_path.rglob("*.txt"))


def test_bom_and_crlf_are_read(tmp_path):
  path = tmp_path / "gt.txt"
  path.write_bytes("\ufeff0--Parade/a.jpg\r\n1\r\n1 2 3 4 0 0 0 0 0 0 \r\n".encode("utf-8"))
  (annotation,) = wider_face.read_bbx_gt(path)
  assert annotation.name == "0--Parade/a.jpg" and annotation.faces[0].w == 3


def _python_port_indexing(gt_dir):
  """How the widely used Python WIDER evaluator reads the .mat files (re-implemented here):
  boxes from face_bbx_list[i][0][j][0], and gt_list[i][0][j][0] used directly as an index."""
  val = scipy.io.loadmat(os.path.join(gt_dir, "wider_face_val.mat"))
  hard = scipy.io.loadmat(os.path.join(gt_dir, "wider_hard_val.mat"))
  kept = 0
  for i in range(len(val["event_list"])):
    for j in range(len(val["file_list"][i][0])):
      gt_boxes = val["face_bbx_list"][i][0][j][0].astype("float")
      keep_index = hard["gt_list"][i][0][j][0]
      ignore = np.zeros(gt_boxes.shape[0])
      if len(keep_index) != 0:
        ignore[keep_index - 1] = 1  # IndexError for float arrays
      kept += int(ignore.sum())
  return kept


def test_eval_ground_truth_has_the_official_integer_types(tmp_path):
  annotations = [wider_face.ImageAnnotation("0--Parade/a.jpg", [
      wider_face.FaceAnnotation(1, 2, 30, 40), wider_face.FaceAnnotation(50, 60, 8, 12)]),
      wider_face.ImageAnnotation("0--Parade/b.jpg", [])]
  gt = wider_face.eval_ground_truth_from_annotations(annotations)
  gt_dir = tmp_path / "ground_truth"
  wider_ground_truth.write_eval_ground_truth(gt_dir, gt)
  assert _python_port_indexing(str(gt_dir)) == 2  # both faces are >= 10 px high: Hard
  hard = scipy.io.loadmat(str(gt_dir / "wider_hard_val.mat"))
  val = scipy.io.loadmat(str(gt_dir / "wider_face_val.mat"))
  assert np.issubdtype(hard["gt_list"][0][0][0][0].dtype, np.integer)
  assert np.issubdtype(val["face_bbx_list"][0][0][0][0].dtype, np.integer)
  # Our reader takes the integer files and double variants of them alike.
  for name in ("wider_face_val.mat", "wider_hard_val.mat"):
    mat = scipy.io.loadmat(str(gt_dir / name))
    for key in ("face_bbx_list", "gt_list"):
      if key in mat:
        for cell in mat[key][:, 0]:
          for k in range(cell.shape[0]):
            cell[k, 0] = cell[k, 0].astype(np.float64)
    scipy.io.savemat(str(tmp_path / name), {k: v for k, v in mat.items()
                                            if not k.startswith("__")})
  for setting in ("easy", "medium"):
    os.link(gt_dir / wider_ground_truth.setting_mat_name(setting),
            tmp_path / wider_ground_truth.setting_mat_name(setting))
  doubles = wider_ground_truth.read_eval_ground_truth(tmp_path)
  ints = wider_ground_truth.read_eval_ground_truth(gt_dir)
  np.testing.assert_array_equal(doubles.gt_lists["hard"][0][0], ints.gt_lists["hard"][0][0])
  np.testing.assert_array_equal(doubles.face_bbx_list[0][0], [[1, 2, 30, 40], [50, 60, 8, 12]])


def _small(**train):
  return config_lib.replace(config_lib.get_preset("demo"), train=dict(
      dict(batch_size=4, steps=4, pretrain_steps=0, checkpoint_every=2, precision="float32"),
      **train))


def test_a_non_finite_loss_stops_the_run_naming_step_and_term(tmp_path, restore_policy):
  cfg = _small()
  task = task_lib.Task(cfg)
  task.train(lambda seed: synthetic.synthetic_dataset(4, seed), str(tmp_path))  # 4 good steps
  good = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())

  def poisoned(seed):
    return synthetic.synthetic_dataset(4, seed).map(lambda b: dict(b, hr=b["hr"] * np.nan))

  longer = config_lib.replace(cfg, train={"steps": 8})
  with pytest.raises(loop.NonFiniteLossError, match=r"GAN step 5: non-finite loss .*g_mse=nan"):
    task_lib.Task(longer).train(poisoned, str(tmp_path))
  # Nothing was saved from the bad step: the last good checkpoint is still the newest.
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == good


def test_a_truncated_latest_checkpoint_falls_back_to_the_one_before(tmp_path, restore_policy,
                                                                     capsys):
  cfg = _small()
  make = lambda seed: synthetic.synthetic_dataset(4, seed)
  task_lib.Task(cfg).train(make, str(tmp_path))
  latest = tmp_path / "checkpoints" / "ckpt-4.data-00000-of-00001"
  latest.write_bytes(latest.read_bytes()[:100])  # a kill while the data file was written
  result, _ = task_lib.Task(config_lib.replace(cfg, train={"steps": 6})).train(
      make, str(tmp_path))
  assert "ckpt-4 cannot be restored" in capsys.readouterr().out
  assert (result.resumed_from, result.steps) == (2, 6)


@pytest.mark.parametrize("section,field,value,message", [
    ("train", "steps", -1, "train.steps must be >= 0"),
    ("train", "checkpoint_every", 0, "train.checkpoint_every must be >= 1"),
    ("train", "batch_size", 0, "train.batch_size must be >= 1"),
    ("crop", "context", 0.0, "crop.context must be > 0"),
    ("detect", "nms_iou", 0.0, r"detect.nms_iou must be in \(0, 1\]"),
    ("optimizer", "g_learning_rate", -1.0, "learning rates must be > 0"),
    ("pipeline", "face_fraction", 1.5, "pipeline.face_fraction"),
    ("generator", "width", 0, "generator widths"),
])
def test_out_of_range_settings_are_refused_before_any_work(section, field, value, message):
  with pytest.raises(ValueError, match=message):
    config_lib.replace(config_lib.get_preset("demo"), **{section: {field: value}})


def test_an_output_may_not_replace_an_input(tmp_path):
  image = tmp_path / "photo.jpg"
  image.write_bytes(b"not really a jpeg")
  env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
  done = subprocess.run([sys.executable, "-m", "tinyfaces_tf.cli.detect", f"--model={tmp_path}",
                         f"--image={image}", f"--out={image}"], capture_output=True, text=True,
                        env=env, timeout=300)
  assert done.returncode == 2 and "--out and --image name the same path" in done.stderr
  assert image.read_bytes() == b"not really a jpeg"


def _write_odd_images(folder):
  """Decodable odd images and undecodable files, written with PIL and by hand."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  folder.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(0)
  rgb = rng.integers(0, 256, (12, 16, 3), np.uint8)
  Image.fromarray(rgb[..., 0]).save(folder / "grey.png")
  Image.fromarray(np.dstack([rgb, np.full((12, 16, 1), 7, np.uint8)])).save(folder / "rgba.png")
  Image.fromarray(rgb).convert("CMYK").save(folder / "cmyk.jpg")
  Image.fromarray((rgb[..., 1].astype(np.uint16) * 257)).save(folder / "deep.png")  # 16 bit
  Image.fromarray(rgb[:1, :1]).save(folder / "one.png")
  Image.fromarray(rgb).save(folder / "good.jpg", quality=95)
  (folder / "truncated.jpg").write_bytes((folder / "good.jpg").read_bytes()[:200])
  (folder / "empty.jpg").write_bytes(b"")
  (folder / "text.jpg").write_text("not an image")
  return rgb


def test_odd_images_are_converted_and_broken_ones_named(tmp_path):
  from tinyfaces_tf import imaging  # pylint: disable=g-import-not-at-top
  rgb = _write_odd_images(tmp_path)
  grey = imaging.load_image(tmp_path / "grey.png")
  assert grey.shape == (12, 16, 3) and grey.dtype == np.uint8
  np.testing.assert_array_equal(grey, np.repeat(rgb[..., :1], 3, axis=-1))
  np.testing.assert_array_equal(imaging.load_image(tmp_path / "rgba.png"), rgb)
  np.testing.assert_array_equal(imaging.load_image(tmp_path / "deep.png")[..., 0], rgb[..., 1])
  assert imaging.load_image(tmp_path / "cmyk.jpg").shape == (12, 16, 3)
  assert imaging.load_image(tmp_path / "one.png").shape == (1, 1, 3)
  for name in ("truncated.jpg", "empty.jpg", "text.jpg"):
    with pytest.raises(ValueError, match=rf"{tmp_path / name}: cannot decode image"):
      imaging.load_image(tmp_path / name)


def test_a_split_job_skips_and_lists_broken_images(tmp_path):
  from tinyfaces_tf import proposals  # pylint: disable=g-import-not-at-top
  from tinyfaces_tf.detection import jobs  # pylint: disable=g-import-not-at-top
  root = tmp_path / "images"
  _write_odd_images(root / "0--Event")
  names = [f"0--Event/{p.name}" for p in sorted((root / "0--Event").iterdir())]
  identity = lambda image, boxes, scores: (boxes, scores)  # the proposer's boxes as detections
  summary = jobs.detect_split(identity, str(root), names, proposals.SlidingWindowProposer(),
                              str(tmp_path / "out"))
  assert summary.images == 6 and len(summary.skipped) == 3
  listed = (tmp_path / "out" / jobs.SKIPPED_FILE).read_text().splitlines()
  assert sorted(line.split("\t")[0] for line in listed) == sorted(
      str(root / "0--Event" / n) for n in ("empty.jpg", "text.jpg", "truncated.jpg"))
  assert len(list((tmp_path / "out" / "0--Event").glob("*.txt"))) == 6


def test_a_roi_build_skips_and_lists_a_broken_image(tmp_path):
  import shutil  # pylint: disable=g-import-not-at-top
  from tinyfaces_tf.datasets.wider_face_rois import wider_face_rois_dataset_builder as builder_lib
  root = tmp_path / "wider"
  shutil.copytree(builder_lib.Builder.code_path.parent / "dummy_data", root)
  broken = root / "WIDER_train" / "images" / "0--Parade" / "0_Parade_marchingband_1_5.jpg"
  broken.write_bytes(broken.read_bytes()[:300])
  counts = task_lib.Task(config_lib.get_preset("journal"), str(root)).build_rois(
      str(tmp_path / "tfds"))
  assert counts["train"] < 10  # the builder test's 10 RoIs, less the broken image's
  (report,) = (tmp_path / "tfds").glob("*skipped_images.txt")
  assert report.read_text().startswith(f"{broken}\t")


# Fuzzing: every input either parses or raises ValueError "FILE:LINE: ...", never another error.

_TEXT = st.text(alphabet="0123456789 -.\n\r\t/abcjpgxyz\ufeff", max_size=200)


def _fuzz(reader, tmp_path_factory, data):
  path = tmp_path_factory.mktemp("fuzz") / "file.txt"
  path.write_bytes(data)
  try:
    reader(path)
  except ValueError as e:
    assert str(e).startswith(f"{path}:") and str(e)[len(str(path)) + 1].isdigit(), str(e)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=_TEXT, raw=st.binary(max_size=40))
def test_fuzz_bbx_gt_reader(tmp_path_factory, text, raw):
  _fuzz(wider_face.read_bbx_gt, tmp_path_factory, text.encode("utf-8"))
  _fuzz(wider_face.read_bbx_gt, tmp_path_factory, raw)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=_TEXT, raw=st.binary(max_size=40))
def test_fuzz_result_file_reader(tmp_path_factory, text, raw):
  _fuzz(result_files.read_result_file, tmp_path_factory, text.encode("utf-8"))
  _fuzz(result_files.read_result_file, tmp_path_factory, raw)


def test_detect_drops_junk_proposals_and_takes_grey_images(restore_policy):
  from tinyfaces_tf import models  # pylint: disable=g-import-not-at-top
  from tinyfaces_tf.detection import detector  # pylint: disable=g-import-not-at-top
  g = models.build_generator("bilinear")
  d = models.build_discriminator("tiny", tiny_width=8)
  detect = detector.Detector(g, d, config=detector.DetectConfig(nms_iou=0.99))
  grey = np.random.default_rng(1).integers(0, 256, (50, 60), np.uint8)
  rgb = np.repeat(grey[..., None], 3, axis=-1)
  boxes = np.array([[5, 5, 25, 30], [np.nan, 0, 10, 10], [40, 40, 20, 20], [0, 0, np.inf, 9],
                    [30, 10, 50, 35]], np.float32)
  scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5], np.float32)
  out_boxes, out_scores = detect(rgb, boxes, scores)
  assert len(out_boxes) == 2 and np.isfinite(out_boxes).all() and np.isfinite(out_scores).all()
  assert (out_boxes[:, 2] > out_boxes[:, 0]).all()
  ref_boxes, ref_scores = detect(rgb, boxes[[0, 4]], scores[[0, 4]])
  np.testing.assert_allclose(out_scores, ref_scores, rtol=1e-5)
  for grey_input in (grey, grey[..., None]):
    grey_boxes, grey_scores = detect(grey_input, boxes, scores)
    np.testing.assert_allclose(grey_scores, out_scores, rtol=1e-5)
  with pytest.raises(ValueError, match="image: expected uint8"):
    detect(rgb.astype(np.float32) / 255.0, boxes, scores)


def test_an_empty_results_directory_is_an_error_not_ap_zero(tmp_path):
  from tinyfaces_tf.evaluation import report  # pylint: disable=g-import-not-at-top
  annotations = [wider_face.ImageAnnotation("0--Parade/a.jpg", [
      wider_face.FaceAnnotation(1, 2, 30, 40)])]
  gt_dir = tmp_path / "gt"
  wider_ground_truth.write_eval_ground_truth(
      gt_dir, wider_face.eval_ground_truth_from_annotations(annotations))
  (tmp_path / "empty").mkdir()
  with pytest.raises(ValueError, match=r"empty: no predictions for any of the 1 ground-truth"):
    report.evaluate_dirs({"ours": str(tmp_path / "empty")}, str(gt_dir), str(tmp_path / "out"))
  assert not (tmp_path / "out").exists()


_KILLED_EXPORT = """
import os, signal, sys
import numpy as np
from tinyfaces_tf import config as config_lib, export, models
g = models.build_generator("tinyfaces", width=4, upsample_width=4, residual_units=1)
d = models.build_discriminator("tiny", tiny_width=4)
path, stage = sys.argv[1], sys.argv[2]
export.export_saved_model(g, d, path, config_lib.get_preset("demo"))
# A second, different export that is killed right after `stage`.
export._after_stage = lambda s: os.kill(os.getpid(), signal.SIGKILL) if s == stage else None
new = config_lib.replace(config_lib.get_preset("demo"), detect={"max_rois": 7})
export.export_saved_model(g, d, path, new)
"""


# "written" leaves what "config" does (the staging folder only), so three stages cover it.
@pytest.mark.parametrize("stage", ["config", "old_moved", "new_moved"])
def test_an_export_killed_between_its_steps_leaves_a_loadable_one(tmp_path, stage):
  from tinyfaces_tf import export  # pylint: disable=g-import-not-at-top
  path = str(tmp_path / "export")
  env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3")
  done = subprocess.run([sys.executable, "-c", _KILLED_EXPORT, path, stage], env=env,
                        capture_output=True, text=True, timeout=300)
  assert done.returncode == -9, done.stderr[-2000:]  # really killed
  detector = export.SavedModelDetector(path)  # loads: the old export, or the complete new one
  expected = 7 if stage == "new_moved" else 600
  assert detector.config.detect.max_rois == expected
  boxes, scores = detector(np.zeros((40, 40, 3), np.uint8), [[5.0, 5.0, 20.0, 20.0]], [0.5])
  assert boxes.shape == (1, 4)


@pytest.mark.parametrize("state_file", ['model_checkpoint_path: "ckpt-4"\n', None])
def test_a_resume_finds_checkpoints_its_state_file_does_not_list(tmp_path, restore_policy,
                                                                  state_file):
  """A state file naming only the latest (valid for TensorFlow), or none at all: the run resumes
  from the newest checkpoint on disk instead of restarting at step 0 beside it."""
  cfg = _small()
  make = lambda seed: synthetic.synthetic_dataset(4, seed)
  task_lib.Task(cfg).train(make, str(tmp_path))
  state = tmp_path / "checkpoints" / "checkpoint"
  if state_file is None:
    state.unlink()
  else:
    state.write_text(state_file)
  result, _ = task_lib.Task(config_lib.replace(cfg, train={"steps": 6})).train(
      make, str(tmp_path))
  assert (result.resumed_from, result.steps) == (4, 6)
