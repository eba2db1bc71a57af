"""tinyfaces_tf.data.rois: labelling, targets, context crops, LR patches, RoI sampling.

References are hand-worked numbers (in comments), NumPy re-computations or known properties.
"""
import math

from hypothesis import given, settings, strategies as st
import numpy as np
import pytest
import tensorflow as tf

from tinyfaces_tf import boxes as box_ops
from tinyfaces_tf import roi_crop
from tinyfaces_tf.data import roi_sampler as rois


def np_iou(a, b):
  """Pairwise IoU [len(a), len(b)] in NumPy (reference)."""
  a = np.asarray(a, np.float64).reshape(-1, 4)
  b = np.asarray(b, np.float64).reshape(-1, 4)
  iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]),
               0, None)
  ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]),
               0, None)
  inter = iw * ih
  area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])
  return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def model(x):
  return np.asarray(x, np.float64) / 127.5 - 1.0


# ---------------------------------------------------------------------------------------------
# Labelling and regression targets.

def test_label_proposals_hand_worked():
  gt = np.array([[0, 0, 10, 10],     # 0: A, valid, area 100
                 [20, 0, 30, 10],    # 1: B, INVALID
                 [0, 20, 10, 30]],   # 2: C, valid
                np.float32)
  valid = np.array([True, False, True])
  proposals = np.array([
      [0, 0, 10, 10],    # A: IoU 1                                   -> face, matched 0
      [0, 0, 10, 5],     # A: inter 50, union 100+50-50=100 -> 0.5     -> face (>= 0.5)
      [0, 0, 10, 4],     # A: inter 40, union 100 -> 0.4               -> ignored
      [5, 0, 15, 10],    # A: inter 50, union 150 -> 0.333 (< 0.35)    -> background
      [4, 0, 14, 10],    # A: inter 60, union 140 -> 0.4286            -> ignored
      [20, 0, 30, 10],   # B (invalid): IoU 1, valid faces 0           -> ignored, not a face
      [26, 0, 36, 10],   # B: inter 40, union 160 -> 0.25              -> background
      [40, 40, 50, 50],  # no overlap                                  -> background
      [0, 18, 10, 28],   # C: inter 80, union 120 -> 0.667             -> face, matched 2
  ], np.float32)
  labels, matched, ious = rois.label_proposals(proposals, gt, valid)
  np.testing.assert_array_equal(labels, [1, 1, -1, 0, -1, -1, 0, 0, 1])
  np.testing.assert_array_equal(matched, [0, 0, -1, -1, -1, -1, -1, -1, 2])
  # Best IoU with a VALID face (B does not count).
  np.testing.assert_allclose(ious, [1, 0.5, 0.4, 1 / 3, 60 / 140, 0, 0, 0, 80 / 120], atol=1e-6)


def test_label_proposals_without_faces():
  labels, matched, ious = rois.label_proposals([[0, 0, 5, 5]], np.zeros((0, 4)), None)
  np.testing.assert_array_equal(labels, [0])
  np.testing.assert_array_equal(matched, [-1])
  np.testing.assert_array_equal(ious, [0])


def test_encode_hand_worked():
  # gt centre (20, 40), size 20 x 40; roi centre (10, 10), size 20 x 20.
  # ((20-10)/20, (40-10)/20, log(20/20), log(40/20)) / (0.1, 0.1, 0.2, 0.2)
  # = (5, 15, 0, log(2)/0.2 = 3.4657).
  v = box_ops.encode([[10, 20, 30, 60]], [[0, 0, 20, 20]]).numpy()
  np.testing.assert_allclose(v, [[5.0, 15.0, 0.0, math.log(2) / 0.2]], rtol=1e-6)


box_strategy = st.tuples(st.floats(-200, 200), st.floats(-200, 200), st.floats(2, 300),
                         st.floats(2, 300))


@settings(max_examples=40, deadline=None)
@given(roi=box_strategy, factors=st.tuples(st.floats(-2, 2), st.floats(-2, 2),
                                           st.floats(0.1, 10), st.floats(0.1, 10)))
def test_encode_decode_round_trip(roi, factors):
  x, y, w, h = roi
  roi_box = np.array([[x, y, x + w, y + h]], np.float32)
  gx, gy = x + factors[0] * w, y + factors[1] * h
  gt = np.array([[gx, gy, gx + factors[2] * w, gy + factors[3] * h]], np.float32)
  back = box_ops.decode(box_ops.encode(gt, roi_box), roi_box).numpy()
  np.testing.assert_allclose(back, gt, atol=1e-3 * max(w, h, 1.0))


# ---------------------------------------------------------------------------------------------
# Context crops.

def crop(image, boxes, context, **kw):
  config = roi_crop.CropConfig(context=context, **kw)
  hr, lr = roi_crop.crop_rois_with_context(image, np.asarray(boxes, np.float32), config)
  return hr.numpy(), lr.numpy()


def test_window_is_roi_scaled_about_centre():
  win = roi_crop.context_windows([[10, 20, 30, 60]], 2.0).numpy()
  # centre (20, 40), size 20 x 40 -> 40 x 80.
  np.testing.assert_allclose(win, [[0, 0, 40, 80]])


@pytest.mark.parametrize("context,roi", [(1.0, [20, 30, 84, 94]), (2.0, [36, 46, 68, 78])])
def test_bright_square_lands_in_expected_hr_pixels(context, roi):
  # Both windows are [20, 30, 84, 94): 64 px wide, so HR pixel (i, j) samples image pixel
  # (30 + i, 20 + j) at its centre, exactly. The square covers pixels x 40..47, y 50..57, so it
  # lands in HR columns 20..27 and rows 20..27.
  image = np.zeros((120, 110, 3), np.uint8)
  image[50:58, 40:48] = 255
  hr, _ = crop(image, [roi], context)
  expected = np.full((64, 64, 3), -1.0)
  expected[20:28, 20:28] = 1.0
  # 1e-4: crop_and_resize's float32 coordinate arithmetic (~1e-5 of a pixel), far below the
  # 1/255 a mixed-in neighbour would cost.
  np.testing.assert_allclose(hr[0], expected, atol=1e-4)


def test_unit_step_window_copies_pixels_exactly():
  image = np.random.default_rng(0).integers(0, 256, (100, 120, 3), np.uint8)
  hr, _ = crop(image, [[26, 36, 58, 68]], 2.0)  # window [10, 20, 74, 84)
  np.testing.assert_allclose(hr[0], model(image[20:84, 10:74]), atol=1e-5)


@pytest.mark.parametrize("pad_value", [0.0, -1.0, 0.5])
def test_padding_exactly_where_window_leaves_image(pad_value):
  image = np.random.default_rng(1).integers(0, 256, (50, 60, 3), np.uint8)
  # Top-left: RoI [-2, -4, 30, 28] (32 px), m = 2 -> window [-18, -20, 46, 44); HR column j
  # samples x = j - 18 (pixel centre), inside for j >= 18; row i samples y = i - 20, i >= 20.
  # Bottom-right: RoI [44, 34, 76, 66] -> window [28, 18, 92, 82): columns j < 32 (x < 60) and
  # rows i < 32 (y < 50) are inside.
  hr, _ = crop(image, [[-2, -4, 30, 28], [44, 34, 76, 66]], 2.0, pad_value=pad_value)
  expected = np.full((2, 64, 64, 3), pad_value)
  expected[0, 20:, 18:] = model(image[0:44, 0:46])
  expected[1, :32, :32] = model(image[18:50, 28:60])
  np.testing.assert_allclose(hr, expected, atol=1e-5)


def np_bilinear_crop(image, window, size, pad):
  """Reference: separable bilinear sampling at the window's sample centres, edge-clamped,
  `pad` where the sample centre is outside [0, W) x [0, H)."""
  image = model(image)
  height, width = image.shape[:2]

  def weights(lo, hi, n):
    c = lo + (np.arange(size) + 0.5) * (hi - lo) / size
    p = np.clip(c - 0.5, 0, n - 1)
    i0 = np.floor(p).astype(int)
    i1 = np.minimum(i0 + 1, n - 1)
    frac = p - i0
    w = np.zeros((size, n))
    w[np.arange(size), i0] += 1 - frac
    w[np.arange(size), i1] += frac
    return w, (c >= 0) & (c < n)

  wy, in_y = weights(window[1], window[3], height)
  wx, in_x = weights(window[0], window[2], width)
  out = np.einsum("ih,hwc,jw->ijc", wy, image, wx)
  out[~(in_y[:, None] & in_x[None, :])] = pad
  return out


@pytest.mark.parametrize("roi,context", [
    ([3.3, 5.7, 23.1, 19.9], 2.0),     # fractional step (~0.62 px), window leaves top-left
    ([30.2, 21.6, 47.9, 47.0], 1.5),   # leaves bottom-right
    ([-8.0, 10.0, 12.0, 30.0], 1.0),   # starts left of the image
    ([0.0, 0.0, 40.0, 48.0], 3.0),     # step ~1.9 px, large shrink without pyramid level
])
def test_crop_matches_numpy_bilinear_reference(roi, context):
  image = np.random.default_rng(2).integers(0, 256, (48, 40, 3), np.uint8)
  hr, _ = crop(image, [roi], context, pad_value=0.25)
  window = roi_crop.context_windows([roi], context).numpy()[0]
  np.testing.assert_allclose(hr[0], np_bilinear_crop(image, window, 64, 0.25), atol=1e-4)


@pytest.mark.parametrize("roi", [
    [60.3, 70.1, 101.5, 112.9],   # window 2 x 41.2 px: step 1.29, level 0
    [97.2, 160.3, 202.8, 262.9],  # window 211.2 x 205.2: steps 3.3 / 3.2, pyramid level 1
    [128.4, 130.0, 291.6, 293.2],  # window 326.4 (inside the image): step 5.1, level 2
])
def test_sample_centres_mapping_on_coordinate_ramp(roi):
  # Pixel (y, x) holds (x / 2, y / 2, 0): bilinear interpolation of a ramp is exact, and so is the
  # 2x2 box filter of the pyramid (a level-l pixel's centre 2**l * (k + 0.5) holds the mean
  # of its pixels, 2**l * (k + 0.5) - 0.5). So sample j must read (c_j - 0.5) / 2 with
  # c_j = x1 + (j + 0.5) * w / 64, whatever the level, if the coordinate mapping is right.
  size = 420
  yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
  image = np.stack([xx / 2, yy / 2, np.zeros_like(xx)], axis=-1)
  hr, _ = crop(image, [roi], 2.0)
  window = roi_crop.context_windows([roi], 2.0).numpy()[0]
  cx = window[0] + (np.arange(64) + 0.5) * (window[2] - window[0]) / 64
  cy = window[1] + (np.arange(64) + 0.5) * (window[3] - window[1]) / 64
  np.testing.assert_allclose(hr[0, 5, :, 0], model((cx - 0.5) / 2), atol=2e-4)
  np.testing.assert_allclose(hr[0, :, 7, 1], model((cy - 0.5) / 2), atol=2e-4)


def test_large_windows_are_antialiased():
  # 1-pixel checkerboard, window 448 px (step 7 per HR pixel). Point sampling with an integer
  # window origin hits pixel centres only: pure black / white (std ~1). The pyramid crops from
  # level 2, whose pixels average 4x4 blocks = 127.5 (model value ~0).
  yy, xx = np.mgrid[0:512, 0:512]
  image = np.repeat((((xx + yy) % 2) * 255).astype(np.uint8)[..., None], 3, axis=-1)
  roi = [[32.0, 32.0, 480.0, 480.0]]
  aliased, _ = crop(image, roi, 1.0, antialias=False)
  smooth, _ = crop(image, roi, 1.0)
  assert aliased.std() > 0.9
  assert np.abs(smooth).max() < 0.01


def test_lr_is_clipped_antialiased_bicubic_of_hr():
  image = np.zeros((80, 80, 3), np.uint8)
  image[30:50, 20:60] = 255  # sharp edges: bicubic overshoots beyond [-1, 1]
  hr, lr = crop(image, [[10, 10, 70, 70], [30, 28, 50, 52]], 1.5)
  reference = tf.image.resize(hr, [16, 16], method="bicubic", antialias=True).numpy()
  assert reference.max() > 1.0 or reference.min() < -1.0
  assert lr.shape == (2, 16, 16, 3)
  np.testing.assert_allclose(lr, np.clip(reference, -1, 1), atol=1e-6)


def test_crop_is_tf_function_compatible():
  fn = roi_crop.compiled_crop(roi_crop.CropConfig(context=2.0))
  image = np.random.default_rng(3).integers(0, 256, (70, 90, 3), np.uint8)
  boxes = np.array([[5, 5, 30, 40], [-10, 20, 60, 90], [0, 0, 90, 70]], np.float32)
  hr, lr = fn(tf.constant(image), tf.constant(boxes))
  hr_eager, lr_eager = crop(image, boxes, 2.0)
  np.testing.assert_allclose(hr.numpy(), hr_eager, atol=1e-6)
  np.testing.assert_allclose(lr.numpy(), lr_eager, atol=1e-6)
  hr, lr = fn(tf.constant(image), tf.zeros([0, 4]))
  assert hr.shape == (0, 64, 64, 3) and lr.shape == (0, 16, 16, 3)


# ---------------------------------------------------------------------------------------------
# Sampling.

GT = np.array([[20, 18, 44, 46], [80, 40, 96, 58], [150, 100, 190, 148], [10, 60, 18, 69]],
              np.float32)
VALID = np.array([True, True, True, False])
SHAPE = (200, 240, 3)


def test_jittered_positives_overlap_their_face():
  config = rois.RoiSamplerConfig(jitter_per_face=5, jitter_shift=0.3, jitter_scale=1.4)
  boxes, owner = rois.jitter_positives(GT[VALID], 5, config, np.random.default_rng(0))
  assert len(boxes) == 15
  np.testing.assert_array_equal(np.bincount(owner), [5, 5, 5])
  own = np_iou(boxes, GT[VALID])[np.arange(len(boxes)), owner]
  assert (own >= 0.5).all()
  assert (own < 0.999).all()  # actually jittered


def test_random_backgrounds_avoid_all_faces():
  config = rois.RoiSamplerConfig()
  bg = rois.random_backgrounds(SHAPE, GT, 60, config, np.random.default_rng(0))
  assert len(bg) == 60
  assert (np_iou(bg, GT).max(axis=1) < 0.35).all()  # the invalid face counts too
  assert (bg[:, :2] >= 0).all() and (bg[:, 2] <= SHAPE[1]).all() and (bg[:, 3] <= SHAPE[0]).all()
  # Sizes follow the faces (8 ... 40 px wide, times 0.8 ... 1.25).
  w = bg[:, 2] - bg[:, 0]
  assert w.min() >= 8 * 0.8 - 1e-4 and w.max() <= 40 * 1.25 + 1e-4
  # Half of them are "hard": within 1.5 face sizes of a face, i.e. touching a face's neighbourhood.
  assert (np_iou(bg, GT).max(axis=1) > 0).sum() >= 10


def test_sample_training_rois_labels_ratio_and_targets():
  config = rois.RoiSamplerConfig(jitter_per_face=2)
  proposals = np.array([[21, 19, 44, 46],      # face 0, IoU 0.96
                        [150, 100, 188, 150],  # face 2
                        [100, 150, 130, 190],  # background
                        [27, 18, 51, 46],      # face 0 shifted 7 px: IoU 17/31 = 0.548 -> face
                        [33, 18, 57, 46]],     # IoU 11/37 = 0.297 -> background
                       np.float32)
  out = rois.sample_training_rois(SHAPE, GT, VALID, proposals, config, 7)
  n = len(out["rois"])
  iou = np_iou(out["rois"], GT)
  best_valid = iou[:, VALID].max(axis=1)
  expected = np.where(best_valid >= 0.5, 1, np.where(iou.max(axis=1) < 0.35, 0, -1))
  np.testing.assert_array_equal(out["labels"], expected)
  np.testing.assert_allclose(out["ious"], best_valid, atol=1e-5)
  n_pos = (out["labels"] == 1).sum()
  assert n_pos == 3 + 2 * 3  # 3 face proposals + 2 jitters per valid face
  assert (out["labels"] == 0).sum() == math.ceil(1.5 * n_pos)  # journal ratio
  assert (out["labels"] == -1).sum() == 0
  # Both background proposals are kept (fewer than wanted).
  for p in proposals[[2, 4]]:
    assert (np.abs(out["rois"] - p).sum(axis=1) < 1e-6).any()
  # Targets: NumPy Fast R-CNN deltas of the best valid face, zeros for backgrounds.
  pos = out["labels"] == 1
  gt = GT[np.argmax(np.where(VALID[None], iou, -1), axis=1)][pos]
  r = out["rois"][pos]
  rw, rh = r[:, 2] - r[:, 0], r[:, 3] - r[:, 1]
  gw, gh = gt[:, 2] - gt[:, 0], gt[:, 3] - gt[:, 1]
  ref = np.stack([(gt[:, 0] + gw / 2 - r[:, 0] - rw / 2) / rw / 0.1,
                  (gt[:, 1] + gh / 2 - r[:, 1] - rh / 2) / rh / 0.1,
                  np.log(gw / rw) / 0.2, np.log(gh / rh) / 0.2], axis=1)
  np.testing.assert_allclose(out["box_targets"][pos], ref, rtol=1e-4, atol=1e-4)
  np.testing.assert_array_equal(out["box_targets"][~pos], 0)
  assert out["rois"].shape == (n, 4) and out["box_targets"].shape == (n, 4)


def test_sampling_is_deterministic_and_capped():
  config = rois.RoiSamplerConfig(jitter_per_face=3, max_rois=10, keep_ignored=True)
  proposals = np.random.default_rng(0).uniform(0, 200, (300, 2))
  proposals = np.concatenate([proposals, proposals + 25], axis=1)
  a = rois.sample_training_rois(SHAPE, GT, VALID, proposals, config, np.random.default_rng(5))
  b = rois.sample_training_rois(SHAPE, GT, VALID, proposals, config, np.random.default_rng(5))
  c = rois.sample_training_rois(SHAPE, GT, VALID, proposals, config, np.random.default_rng(6))
  for key in a:
    np.testing.assert_array_equal(a[key], b[key])
  assert not np.array_equal(a["rois"], c["rois"])
  assert len(a["rois"]) == 10
  # 10 / (1 + 1.5) = 4 positives, 6 backgrounds.
  assert (a["labels"] == 1).sum() == 4 and (a["labels"] == 0).sum() == 6


def test_faceless_image_still_gives_backgrounds():
  out = rois.sample_training_rois(SHAPE, np.zeros((0, 4)), None, None, rois.RoiSamplerConfig(), 0)
  np.testing.assert_array_equal(out["labels"], [0, 0])
  w = out["rois"][:, 2] - out["rois"][:, 0]
  assert ((w >= 10) & (w <= 100)).all()


def test_make_training_examples_crops_the_sampled_rois():
  image = np.random.default_rng(4).integers(0, 256, SHAPE, np.uint8)
  out = rois.make_training_examples(image, GT, VALID, None, rois.RoiSamplerConfig(),
                                    roi_crop.CropConfig(context=1.5), 3)
  n = len(out["rois"])
  assert out["hr"].shape == (n, 64, 64, 3) and out["lr"].shape == (n, 16, 16, 3)
  for i in (0, n - 1):
    window = roi_crop.context_windows(out["rois"][i:i + 1], 1.5).numpy()[0]
    np.testing.assert_allclose(out["hr"][i], np_bilinear_crop(image, window, 64, 0.0), atol=1e-4)


@pytest.mark.parametrize("config,kwargs,match", [
    (roi_crop.CropConfig, {"hr_size": 64, "scale": 3}, "multiple of crop.scale"),
    (rois.RoiSamplerConfig, {"fg_iou": 0.3, "bg_iou": 0.35}, "bg_iou"),
    (roi_crop.CropConfig, {"context": 0.0}, "context"),
])
def test_bad_config_is_rejected(config, kwargs, match):
  with pytest.raises(ValueError, match=match):
    config(**kwargs)


def test_bad_boxes_name_the_argument():
  with pytest.raises(ValueError, match="gt_valid has 1 entries for 2 gt_boxes"):
    rois.label_proposals([[0, 0, 1, 1]], [[0, 0, 1, 1], [2, 2, 3, 3]], [True])
  with pytest.raises(ValueError, match="proposals"):
    rois.sample_training_rois(SHAPE, GT, VALID, np.zeros((3, 2)), rois.RoiSamplerConfig(), 0)
