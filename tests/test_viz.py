"""Figures: files are written and hold the drawn content (checked by reading the PNGs back)."""
import numpy as np
import pytest
from PIL import Image

from tinyfaces_tf import viz


def load_rgb(path):
  return np.asarray(Image.open(path).convert("RGB")).astype(np.int32)


def color_mask(pixels, rgb, tol=40):
  return np.all(np.abs(pixels - np.asarray(rgb)) <= tol, axis=-1)


def test_curve_label_format():
  assert viz.curve_label("ours", 0.91249) == "ours (AP 0.912)"
  assert viz.curve_label("MB-FCN", np.float32(0.5)) == "MB-FCN (AP 0.500)"


def test_plot_pr_curves_one_panel_per_setting(tmp_path):
  recall = np.linspace(0, 0.9, 200)
  curves = {
      "baseline": {s: (1 - recall ** 2, recall, 0.7) for s in viz.SETTINGS},
      "ours": {s: (1 - recall ** 4, recall, 0.8) for s in viz.SETTINGS},
  }
  path = viz.plot_pr_curves(curves, str(tmp_path / "sub" / "pr.png"))
  pixels = load_rgb(path)
  assert pixels.std() > 20  # not a blank canvas
  # The first two lines use matplotlib's default cycle colours C0 (#1f77b4) and C1 (#ff7f0e).
  blue = color_mask(pixels, (0x1f, 0x77, 0xb4), tol=25)
  orange = color_mask(pixels, (0xff, 0x7f, 0x0e), tol=25)
  assert blue.sum() > 300 and orange.sum() > 300
  # Three panels side by side: the blue curve's columns form three separate runs, one per panel
  # (the legend's blue sample sits inside each panel's run).
  has_blue = blue.any(axis=0).astype(np.int8)
  assert np.sum(np.diff(has_blue) == 1) + has_blue[0] == 3
  width = pixels.shape[1]
  # A single setting gives a single (narrower) panel.
  single = load_rgb(viz.plot_pr_curves({"ours": {"hard": curves["ours"]["hard"]}},
                                       str(tmp_path / "hard.png")))
  assert single.shape[1] < width / 2
  with pytest.raises(ValueError, match="differ in length"):
    viz.plot_pr_curves({"x": {"easy": (np.ones(3), np.ones(4), 0.1)}}, str(tmp_path / "bad.png"))


def test_plot_sr_grid_columns_in_order(tmp_path):
  n = 5
  def const(rgb, size):
    # Model range [-1, 1]: -1 -> 0, 1 -> 255.
    return np.broadcast_to(np.asarray(rgb, np.float32), [n, size, size, 3]).copy()
  lr = const([-1, -1, 1], 16)      # blue
  bicubic = const([-1, 1, -1], 64)  # green
  sr = const([1, -1, -1], 64)       # red
  hr = const([1, 1, -1], 64)        # yellow
  path = viz.plot_sr_grid(lr, bicubic, sr, hr, [1, 0, 0, 1, 0], str(tmp_path / "sr.png"),
                          max_rows=4)
  pixels = load_rgb(path)
  assert pixels.std() > 20
  centres = []
  for rgb in [(0, 0, 255), (0, 255, 0), (255, 0, 0), (255, 255, 0)]:
    mask = color_mask(pixels, rgb, tol=10)
    assert mask.sum() > 4 * 60 * 60  # four rows of a ~64+ px tile
    centres.append(np.nonzero(mask)[1].mean())
  assert centres == sorted(centres)  # LR | bicubic | SR | HR, left to right
  # Four rows: the blue column's tiles form four separate vertical runs.
  blue_rows = color_mask(pixels, (0, 0, 255), tol=10).any(axis=1).astype(np.int8)
  assert np.sum(np.diff(blue_rows) == 1) + blue_rows[0] == 4


def test_select_rows_balances_faces_and_backgrounds():
  labels = [1, 1, 1, 1, 1, 0, 0, 1, 0]
  # 4 rows: two faces (indices 0, 1) then two backgrounds (5, 6).
  assert viz.select_rows(labels, 4) == [0, 1, 5, 6]
  # Only 3 backgrounds exist: faces fill the remaining rows of 8.
  assert viz.select_rows(labels, 8) == [0, 1, 2, 3, 4, 5, 6, 8]
  assert viz.select_rows(["bg", "face", "bg"], 2) == [1, 0]


def test_select_rows_takes_every_class_in_turn_and_groups_them():
  labels = ["cat", "background", "face", "face", "coin", "bg", "cat", "coin"]
  # 4 rows: two objects (cat 0, then face 2: classes in turn), two backgrounds (1, 5).
  assert viz.select_rows(labels, 4) == [0, 2, 1, 5]
  # 8 rows, 2 backgrounds: six objects, two per class, shown grouped by class.
  assert viz.select_rows(labels, 8) == [0, 6, 2, 3, 4, 7, 1, 5]
  # 6 rows, only 2 backgrounds: four objects (cat, face, coin, then cat again), grouped.
  assert viz.select_rows(labels, 6) == [0, 6, 2, 4, 1, 5]


def test_draw_detections_colors_at_box_edges(tmp_path):
  rng = np.random.default_rng(0)
  # Mid-grey noise: neither pure red nor pure green occurs in the image itself.
  image = rng.integers(100, 156, size=[120, 160, 3]).astype(np.uint8)
  detection = (80.0, 50.0, 130.0, 100.0)
  gt = (10.0, 20.0, 50.0, 70.0)
  low = (5.0, 90.0, 30.0, 115.0)  # below the threshold: not drawn
  path = viz.draw_detections(image, [detection, low], [0.93, 0.1], [gt],
                             str(tmp_path / "det.png"), score_threshold=0.5)
  pixels = load_rgb(path)
  assert pixels.shape == (120, 160, 3)  # the image's own size
  red = color_mask(pixels, (255, 0, 0), tol=30)
  green = color_mask(pixels, (0, 255, 0), tol=30)
  assert not color_mask(image.astype(np.int32), (255, 0, 0), tol=30).any()

  def edge_hit(mask, x, y, radius=2):
    return mask[int(y) - radius:int(y) + radius + 1, int(x) - radius:int(x) + radius + 1].any()

  x1, y1, x2, y2 = detection
  for point in [(x1, (y1 + y2) / 2), (x2, (y1 + y2) / 2), ((x1 + x2) / 2, y2)]:
    assert edge_hit(red, *point)
  assert not red[int(y1) + 5:int(y2) - 5, int(x1) + 5:int(x2) - 5].any()  # outline only
  gx1, gy1, gx2, gy2 = gt
  for point in [(gx1, (gy1 + gy2) / 2), (gx2, (gy1 + gy2) / 2), ((gx1 + gx2) / 2, gy1),
                ((gx1 + gx2) / 2, gy2)]:
    assert edge_hit(green, *point)
  assert not red[int(gy1) - 3:int(gy2) + 4, int(gx1) - 3:int(gx2) + 4].any()
  assert not edge_hit(red, low[2], (low[1] + low[3]) / 2)  # filtered out by score_threshold
  # The score label is drawn: white text pixels inside a red tag near the box's top-left corner.
  tag = pixels[int(y1) - 20:int(y1), int(x1) - 1:int(x1) + 40]
  assert color_mask(tag, (255, 255, 255), tol=60).any()
  # Without ground truth (the detect CLI's case) nothing green is drawn.
  plain = load_rgb(viz.draw_detections(image, [detection], [0.9], None,
                                       str(tmp_path / "plain.png")))
  assert not color_mask(plain, (0, 255, 0), tol=30).any()


def test_context_crops_figure_has_a_column_per_context(tmp_path):
  from PIL import Image
  from tinyfaces_tf import viz
  contexts = (1.0, 2.0, 4.0)
  rng = np.random.default_rng(0)
  hr = rng.uniform(-1, 1, (3, 64, 64, 3)).astype(np.float32)
  lr = rng.uniform(-1, 1, (3, 16, 16, 3)).astype(np.float32)
  path = viz.plot_context_crops(contexts, hr, lr, str(tmp_path / "fig4.png"))
  width, height = Image.open(path).size
  assert width > height  # three columns of HR over LR: wider than tall
  with pytest.raises(ValueError, match="3 contexts, 2 HR"):
    viz.plot_context_crops(contexts, hr[:2], lr, str(tmp_path / "bad.png"))
