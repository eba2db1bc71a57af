"""The embedded demo dataset: pasted pixels match the written boxes, splits are disjoint, the
eval_tools .mat files follow the height rule, and the output is deterministic for a seed.

References are computed here independently: lfw_subset is loaded again from scikit-image, crops
are resized with PIL (the code uses scikit-image), .mat files are read with scipy.io.loadmat
using the official python-port indexing, and the Easy/Medium/Hard rule is re-applied with NumPy
to the text annotation rows.
"""
import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.io
import scipy.ndimage
import skimage.data
from PIL import Image

from tinyfaces_tf.data import demo
from tinyfaces_tf.data import wider_face
from tinyfaces_tf.data import wider_ground_truth

LFW = skimage.data.lfw_subset()  # [200, 25, 25]; 0-99 faces, 100-199 non-faces.
# Without the realism of real photographs (soft masks, figures, grayscale scenes), so a pasted
# box holds exactly its crop; test_soft_masks_figures_and_grayscale checks those.
PLAIN = dict(mask_exponent=None, figure_probability=0.0, distractor_figure_probability=0.0,
             grayscale_probability=0.0)
CLEAN = demo.SceneConfig(blur_probabilities=(1, 0, 0), illumination_probability=0.0,
                         occlusion_probabilities=(1, 0, 0), noise_sigma_range=(0.0, 0.0),
                         invalid_probability=0.0, face_height_range=(20, 80), faces_range=(4, 6),
                         distractors_range=(2, 3), **PLAIN)


def _pil_resize(array, w, h):
  """Bilinear resize of a float [h0, w0] array with PIL (independent of the code's skimage)."""
  image = Image.fromarray(np.asarray(array, np.float32), mode="F")
  return np.asarray(image.resize((w, h), Image.Resampling.BILINEAR), np.float64)


def _reference_rgb(patch):
  """The undegraded pasted face: the crop (mirrored if so), tinted as documented, resized."""
  crop = LFW[patch.lfw_index][:, ::-1] if patch.flipped else LFW[patch.lfw_index]
  _, _, w, h = patch.box_xywh
  rgb = np.clip(crop[..., None] * np.asarray(patch.tone)[None, None, :] * 1.3, 0.0, 1.0)
  return 255.0 * np.stack([_pil_resize(rgb[..., c], w, h) for c in range(3)], axis=-1)


def _corr(a, b):
  a = np.asarray(a, np.float64).ravel() - np.mean(a)
  b = np.asarray(b, np.float64).ravel() - np.mean(b)
  return float(a @ b / np.sqrt((a @ a) * (b @ b) + 1e-12))


def _region(image, box):
  x, y, w, h = box
  return image[y:y + h, x:x + w].astype(np.float64)


def test_boxes_are_exactly_where_faces_were_pasted():
  scene = demo.render_scene(np.random.default_rng(5), [3, 17, 42], [120, 150], CLEAN)
  assert len(scene.faces) >= 4 and len(scene.distractors) >= 2
  pasted = np.zeros(scene.image.shape[:2], bool)
  for patch in scene.faces + scene.distractors:
    x, y, w, h = patch.box_xywh
    assert 0 <= x and 0 <= y and x + w <= scene.image.shape[1] and y + h <= scene.image.shape[0]
    assert not pasted[y:y + h, x:x + w].any(), "pasted patches overlap"
    pasted[y:y + h, x:x + w] = True
  # Outside every pasted box the image is the untouched background, to the pixel.
  np.testing.assert_array_equal(scene.image[~pasted], scene.background[~pasted])
  for patch in scene.faces:
    face = patch.annotation
    assert patch.lfw_index in (3, 17, 42)
    assert (face.x, face.y, face.w, face.h) == patch.box_xywh
    region = _region(scene.image, patch.box_xywh)
    reference = _reference_rgb(patch)
    # Inside the box: the whole box is the resized crop (a box 1 px too large or too small
    # would mix in background and break the match).
    assert _corr(region.mean(-1), reference.mean(-1)) > 0.98
    # Up to the documented normal-illumination gain 0.85-1.15 (least-squares fit).
    assert 0.83 < np.sum(region * reference) / np.sum(reference * reference) < 1.17
    assert np.abs(region - _region(scene.background, patch.box_xywh)).mean() > 5.0
    # Skin tints have R > G > B.
    means = region.reshape(-1, 3).mean(0)
    assert means[0] > means[1] > means[2]
  # Distractors are non-face crops and are not annotated.
  assert all(p.annotation is None and p.lfw_index >= 100 for p in scene.distractors)


def test_soft_masks_figures_and_grayscale():
  config = dataclasses.replace(CLEAN, mask_exponent=3.0, figure_probability=1.0,
                               distractor_figure_probability=1.0, face_height_range=(24, 40))
  figures = 0
  for seed in range(6):
    scene = demo.render_scene(np.random.default_rng(seed), np.arange(100), np.arange(100, 200),
                              config)
    drawn = np.zeros(scene.image.shape[:2], bool)
    for patch in scene.faces + scene.distractors:
      x, y, w, h = patch.box_xywh
      drawn[y:y + h, x:x + w] = True
      if patch.figure_xywh is None:
        continue
      figures += 1
      fx, fy, fw, fh = patch.figure_xywh
      # The person's box holds the face box, reaches below the chin (shoulders) and, clipped to
      # the image, stays inside it.
      assert fx <= x and fy <= y and x + w <= fx + fw and y + h < fy + fh
      assert 0 <= fx and 0 <= fy and fx + fw <= scene.image.shape[1]
      assert fy + fh <= scene.image.shape[0]
      drawn[fy:fy + fh, fx:fx + fw] = True
    # Outside every patch and figure: the background, to the pixel.
    np.testing.assert_array_equal(scene.image[~drawn], scene.background[~drawn])
    for patch in scene.faces:
      x, y, w, h = patch.box_xywh
      region = _region(scene.image, patch.box_xywh)
      reference = _reference_rgb(patch)
      # Inside the super-ellipse (|u|^3 + |v|^3 <= 0.5^3 around the centre) the face crop is
      # pasted as it is; the box's corners are outside the mask, not the crop.
      v = (np.arange(h) + 0.5 - h / 2) / (h / 2)
      u = (np.arange(w) + 0.5 - w / 2) / (w / 2)
      inner = np.abs(v)[:, None] ** 3 + np.abs(u)[None, :] ** 3 <= 0.125
      assert _corr(region[inner].mean(-1), reference[inner].mean(-1)) > 0.98
      assert 0.83 < np.sum(region[inner] * reference[inner]) / np.sum(reference[inner] ** 2) < 1.17
  assert figures >= 10
  gray = demo.render_scene(np.random.default_rng(0), np.arange(100), np.arange(100, 200),
                           dataclasses.replace(config, grayscale_probability=1.0))
  colour = demo.render_scene(np.random.default_rng(0), np.arange(100), np.arange(100, 200),
                             config)
  assert gray.grayscale and not colour.grayscale
  # The same scene in BT.601 luma (independent formula: PIL's convert("L")).
  expected = np.asarray(Image.fromarray(colour.image).convert("L"), np.int64)
  assert np.abs(gray.image[..., 0].astype(np.int64) - expected).max() <= 1
  assert (gray.image == gray.image[..., :1]).all() and (gray.background == gray.background[..., :1]).all()


def _sharpness(gray):
  return np.abs(scipy.ndimage.laplace(gray))[2:-2, 2:-2].mean() / gray.std()


def test_attributes_describe_the_degradations():
  blur_ratio = {0: [], 1: [], 2: []}
  gain = {0: [], 1: []}
  occluded = 0
  config = demo.SceneConfig(face_height_range=(40, 40), aspect_range=(1.0, 1.0),
                            noise_sigma_range=(0.0, 0.0), illumination_probability=0.4,
                            faces_range=(6, 8), invalid_probability=0.2,
                            blur_probabilities=(1.0, 1.0, 1.0), **PLAIN)
  for seed in range(12):
    scene = demo.render_scene(np.random.default_rng(seed), np.arange(100), np.arange(100, 200),
                              config)
    for patch in scene.faces:
      face = patch.annotation
      assert face.expression == 0 and face.pose == 0
      if face.invalid:
        assert 6 <= face.h <= 9  # the tiny ones below WIDER's 10 px
        continue
      assert face.h == 40
      region = _region(scene.image, patch.box_xywh)
      reference = _reference_rgb(patch)
      x, y, w, h = patch.box_xywh
      if face.occlusion:
        ox, oy, ow, oh = patch.occluder_xywh
        assert x <= ox and y <= oy and ox + ow <= x + w and oy + oh <= y + h
        fraction = ow * oh / (w * h)
        # WIDER: partial occlusion 1-30 %, heavy > 30 %.
        assert face.occlusion == (1 if fraction <= 0.30 else 2), fraction
        assert fraction >= 0.01
        occluded += 1
        continue
      assert patch.occluder_xywh is None
      if face.blur == 0:
        gain[face.illumination].append(region.mean() / reference.mean())
      if face.illumination == 0:
        blur_ratio[face.blur].append(_sharpness(region.mean(-1)) / _sharpness(reference.mean(-1)))
  assert occluded > 0 and all(len(v) >= 3 for v in blur_ratio.values()), blur_ratio
  assert all(len(v) >= 3 for v in gain.values())
  # Sharpness relative to the undegraded crop: blur 0 keeps it, 1 loses some, 2 most.
  assert min(blur_ratio[0]) > 0.9
  assert 0.25 < min(blur_ratio[1]) and max(blur_ratio[1]) < 0.75
  assert max(blur_ratio[2]) < 0.25
  # Brightness relative to the undegraded crop: normal within +-20 %; extreme is dimmed below
  # 45 % or over-exposed (x1.8-2.5, which clipping at 255 can pull down to ~1.3 on average).
  assert all(0.8 < g < 1.2 for g in gain[0]), sorted(gain[0])
  assert all(g < 0.45 or g > 1.25 for g in gain[1]), sorted(gain[1])
  assert min(gain[1]) < 0.45 < 1.25 < max(gain[1])


def _best_lfw_match(image, box):
  """(index, correlation) of the lfw_subset crop (or its mirror) that best matches the box."""
  x, y, w, h = box
  gray = image[y:y + h, x:x + w].astype(np.float64).mean(-1)
  small = _pil_resize(gray, 25, 25)
  # Compared inside the soft mask's super-ellipse, where the face crop is pasted as it is.
  t = (np.arange(25) + 0.5 - 12.5) / 12.5
  inner = np.abs(t)[:, None] ** 3 + np.abs(t)[None, :] ** 3 <= 0.7 ** 3
  best = (-1, -2.0)
  for index in range(len(LFW)):
    for crop in (LFW[index], LFW[index][:, ::-1]):
      c = _corr(small[inner], crop[inner])
      if c > best[1]:
        best = (index, c)
  return best


def _rows(annotation):
  """[K, 10] integer rows of one image, as in the text file."""
  return np.asarray([f.values for f in annotation.faces], np.int64).reshape(-1, 10)


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
  root = tmp_path_factory.mktemp("demo") / "wider"
  summary = demo.make_demo_dataset(root, train_images=4, val_images=4, test_images=2, seed=0)
  return root, summary


def test_layout_and_written_boxes_match_image_pixels(demo_root):
  root, summary = demo_root
  dataset = wider_face.WiderFace(root)
  assert summary["train"]["images"] == 4 and summary["val"]["images"] == 4
  for split in wider_face.SPLITS:
    assert dataset.check_images(split) == []
  assert len(dataset.test_names()) == 2
  assert dataset.ground_truth_dir == os.path.join(str(root), "eval_tools", "ground_truth")
  matched = {}
  for split in ("train", "val"):
    annotations = dataset.annotations(split)
    assert len(annotations) == 4
    matched[split] = set()
    for annotation in annotations:
      image = dataset.read_image(split, annotation.name)
      assert 256 <= image.shape[0] <= 320 and 256 <= image.shape[1] <= 320
      rows = _rows(annotation)
      assert len(rows) >= 2
      assert np.all(rows[:, 0] >= 0) and np.all(rows[:, 1] >= 0)
      assert np.all(rows[:, 0] + rows[:, 2] <= image.shape[1])
      assert np.all(rows[:, 1] + rows[:, 3] <= image.shape[0])
      valid = rows[:, 7] == 0
      assert np.all((rows[valid, 3] >= 10) & (rows[valid, 3] <= 80))
      assert np.all(rows[~valid, 3] < 10)
      for row in rows:
        x, y, w, h, blur, _, illumination, invalid, occlusion, _ = row
        if invalid or blur or illumination or occlusion or h < 16:
          continue
        # A clean face in the JPEG is one of the 100 lfw faces (not a non-face crop).
        index, corr = _best_lfw_match(image, (x, y, w, h))
        assert corr > 0.9, (annotation.name, row, corr)
        assert index < 100
        matched[split].add(index)
  assert matched["train"] and matched["val"]
  # Train and val faces come from disjoint lfw crops.
  assert not matched["train"] & matched["val"]
  assert not set(summary["lfw_face_ids"]["train"]) & set(summary["lfw_face_ids"]["val"])


def _cell(value):
  return np.asarray(value).reshape(-1)


def test_mat_files_follow_the_height_rule(demo_root):
  root, _ = demo_root
  annotations = wider_face.read_bbx_gt(root / "wider_face_split" / "wider_face_val_bbx_gt.txt")
  events = []
  for a in annotations:
    event = a.name.split("/")[0]
    if event not in events:
      events.append(event)
  gt_dir = root / "eval_tools" / "ground_truth"
  val = scipy.io.loadmat(gt_dir / "wider_face_val.mat")
  assert [str(val["event_list"][i][0][0]) for i in range(len(val["event_list"]))] == events
  by_key = {}
  for i, event in enumerate(events):
    files = val["file_list"][i][0]
    for j in range(len(files)):
      by_key[(i, j)] = f"{event}/{files[j][0][0]}.jpg"
  assert sorted(by_key.values()) == sorted(a.name for a in annotations)
  rows = {a.name: _rows(a) for a in annotations}
  for (i, j), name in by_key.items():
    np.testing.assert_array_equal(val["face_bbx_list"][i][0][j][0].reshape(-1, 4),
                                  rows[name][:, :4])
    np.testing.assert_array_equal(_cell(val["blur_label_list"][i][0][j][0]), rows[name][:, 4])
    np.testing.assert_array_equal(_cell(val["invalid_label_list"][i][0][j][0]), rows[name][:, 7])
  sizes = {}
  for setting, min_height in (("easy", 50), ("medium", 30), ("hard", 10)):
    mat = scipy.io.loadmat(gt_dir / f"wider_{setting}_val.mat")
    assert [str(e[0][0]) for e in mat["event_list"]] == events
    sizes[setting] = 0
    for (i, j), name in by_key.items():
      r = rows[name]
      expected = np.flatnonzero((r[:, 7] == 0) & (r[:, 3] >= min_height)) + 1
      np.testing.assert_array_equal(_cell(mat["gt_list"][i][0][j][0]), expected)
      np.testing.assert_array_equal(mat["face_bbx_list"][i][0][j][0].reshape(-1, 4), r[:, :4])
      sizes[setting] += expected.size
  assert 0 < sizes["easy"] < sizes["medium"] < sizes["hard"]
  # The project's eval_tools reader agrees.
  gt = wider_ground_truth.read_eval_ground_truth(gt_dir)
  assert gt.num_images == len(annotations)


def _tree_bytes(root):
  out = {}
  for folder, _, files in os.walk(root):
    for name in files:
      path = os.path.join(folder, name)
      with open(path, "rb") as f:
        out[os.path.relpath(path, root)] = f.read()
  return out


def test_deterministic_for_a_seed(tmp_path):
  kwargs = dict(train_images=2, val_images=2, test_images=1)
  demo.make_demo_dataset(tmp_path / "a", seed=3, **kwargs)
  demo.make_demo_dataset(tmp_path / "b", seed=3, **kwargs)
  demo.make_demo_dataset(tmp_path / "c", seed=4, **kwargs)
  a, b, c = (_tree_bytes(tmp_path / n) for n in "abc")
  assert len(a) == 2 + 2 + 1 + 3 + 4 + 1  # images, 3 split files, 4 .mat, demo_info.json
  assert a == b
  gt = os.path.join("wider_face_split", "wider_face_train_bbx_gt.txt")
  assert a[gt] != c[gt]
  # Re-running into a demo folder replaces it; a foreign WIDER-like folder is refused.
  demo.make_demo_dataset(tmp_path / "a", seed=3, train_images=1, val_images=1, test_images=0)
  assert len(_tree_bytes(tmp_path / "a")) == 1 + 1 + 3 + 4 + 1
  # An interrupted run (no demo_info.json yet) is redone.
  os.remove(tmp_path / "a" / "demo_info.json")
  (tmp_path / "a" / ".demo_incomplete").write_text("")
  demo.make_demo_dataset(tmp_path / "a", seed=3, **kwargs)
  assert _tree_bytes(tmp_path / "a") == b
  (tmp_path / "foreign" / "WIDER_train").mkdir(parents=True)
  with pytest.raises(FileExistsError, match="foreign"):
    demo.make_demo_dataset(tmp_path / "foreign", train_images=1, val_images=1)


def test_cli_demo_and_check(tmp_path):
  out = tmp_path / "cli"
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  done = subprocess.run(
      [sys.executable, "-m", "tinyfaces_tf.cli.data", "demo", f"--out={out}",
       "--train_images=2", "--val_images=1", "--test_images=1", "--seed=2"],
      capture_output=True, text=True, env=env, timeout=120)
  assert done.returncode == 0, done.stderr[-2000:]
  demo.make_demo_dataset(tmp_path / "api", train_images=2, val_images=1, test_images=1, seed=2)
  assert _tree_bytes(out) == _tree_bytes(tmp_path / "api")
  missing = out / "WIDER_val" / "images" / wider_face.read_bbx_gt(
      out / "wider_face_split" / "wider_face_val_bbx_gt.txt")[0].name
  os.remove(missing)
  done = subprocess.run([sys.executable, "-m", "tinyfaces_tf.cli.data", "check",
                         f"--wider_dir={out}"], capture_output=True, text=True, env=env,
                        timeout=120)
  assert done.returncode == 1
  assert str(missing) in done.stderr
  bad = subprocess.run([sys.executable, "-m", "tinyfaces_tf.cli.data", "nonsense"],
                       capture_output=True, text=True, env=env, timeout=120)
  assert bad.returncode != 0 and "demo" in bad.stderr


def test_make_demo_rewrites_an_older_version_and_what_was_derived_from_it(tmp_path, capsys):
  from tinyfaces_tf import demo_job  # pylint: disable=g-import-not-at-top
  paths = demo_job.DemoPaths(str(tmp_path / "data"), str(tmp_path / "run"))
  sizes = dict(train_images=1, val_images=1, seed=0)
  assert demo_job.ensure_dataset(paths, **sizes)
  (tmp_path / "run" / "tfds").mkdir(parents=True)
  (tmp_path / "run" / "metrics.json").write_text("{}")
  (tmp_path / "run" / "mine.txt").write_text("not the demo's")
  proposals = tmp_path / "data" / wider_face.PROPOSALS_DIR / "val"
  proposals.mkdir(parents=True)
  # The current version is reused as it is.
  assert not demo_job.ensure_dataset(paths, **sizes)
  assert (tmp_path / "run" / "tfds").exists() and proposals.exists()
  # A folder written by the first demo (no version) is rewritten, with the proposals and the
  # run's tfds/metrics derived from it; other files stay.
  meta = tmp_path / "data" / demo.META_FILE
  meta.write_text(meta.read_text().replace(f'"version": {demo.DATA_VERSION},', ""))
  assert demo_job.ensure_dataset(paths, **sizes)
  assert "holds version 1" in capsys.readouterr().out
  assert not (tmp_path / "run" / "tfds").exists() and not (tmp_path / "run" / "metrics.json").exists()
  assert not proposals.exists() and (tmp_path / "run" / "mine.txt").exists()
  assert f'"version": {demo.DATA_VERSION}' in meta.read_text()
