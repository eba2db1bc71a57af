"""Figures of the papers, written as PNG files: PR curves per WIDER setting (Fig. 7/8),
LR | bicubic | SR | HR RoI grids (Fig. 3/5), one RoI at every context factor (Fig. 4) and
detections on an image (Fig. 10).

Uses ``matplotlib.figure.Figure`` directly (Agg canvas, no pyplot): nothing opens a window or
touches matplotlib's global backend/state, so it is safe on headless machines and in threads.
"""
import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from tinyfaces_tf import imaging
from tinyfaces_tf.data.wider_ground_truth import SETTINGS

GT_COLOR = "#00ff00"         # ground truth: green (journal Fig. 10)
DETECTION_COLOR = "#ff0000"  # ours: red


def _new_figure(width_in, height_in, dpi=100):
  fig = Figure(figsize=(width_in, height_in), dpi=dpi)
  FigureCanvasAgg(fig)
  return fig


def _save(fig, out_path, **kwargs):
  folder = os.path.dirname(os.path.abspath(out_path))
  os.makedirs(folder, exist_ok=True)
  fig.savefig(out_path, **kwargs)
  return out_path


def curve_label(name, ap):
  """Legend entry "name (AP 0.xxx)"."""
  return f"{name} (AP {float(ap):.3f})"


def plot_pr_curves(curves, out_path, settings=None, title=None):
  """Precision-recall curves, one panel per WIDER setting, one line per method.

  Args:
    curves: {method label: {setting: (precision [T], recall [T], ap)}}, e.g. baseline and ours.
    out_path: PNG to write (folders are created).
    settings: panel order; default the settings present among easy, medium, hard (then any other).
    title: optional figure title.
  Returns:
    out_path.
  """
  if not curves:
    raise ValueError("plot_pr_curves: no curves given")
  present = {s for per_setting in curves.values() for s in per_setting}
  if settings is None:
    settings = [s for s in SETTINGS if s in present] + sorted(present - set(SETTINGS))
  if not settings:
    raise ValueError("plot_pr_curves: the curves hold no setting")
  fig = _new_figure(4.2 * len(settings), 4.2)
  axes = fig.subplots(1, len(settings), squeeze=False)[0]
  for ax, setting in zip(axes, settings):
    for name, per_setting in curves.items():
      if setting not in per_setting:
        continue
      precision, recall, ap = per_setting[setting]
      precision = np.asarray(precision, np.float64).reshape(-1)
      recall = np.asarray(recall, np.float64).reshape(-1)
      if precision.shape != recall.shape:
        raise ValueError(f"plot_pr_curves: {name}/{setting}: precision {precision.shape} and "
                         f"recall {recall.shape} differ in length")
      ax.plot(recall, precision, linewidth=2, label=curve_label(name, ap))
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("Recall")
    ax.set_ylabel("Precision")
    ax.set_title(setting.capitalize())
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  return _save(fig, out_path, dpi=100)


_BACKGROUND_NAMES = ("bg", "background")


def _is_object(label):
  """A face or any other class: not background (0 / False / "bg" / "background")."""
  if isinstance(label, (str, bytes)):
    label = label.decode() if isinstance(label, bytes) else label
    return label.lower() not in _BACKGROUND_NAMES
  return bool(label)


def _row_text(label):
  if isinstance(label, (str, bytes)):
    return label.decode() if isinstance(label, bytes) else label
  return "face" if bool(label) else "bg"


def select_rows(labels, max_rows):
  """Row indices for the SR grid: up to half objects, the rest backgrounds (either group fills in
  when the other runs short). Objects are taken from each class in turn and shown grouped by
  class (classes in order of first appearance), backgrounds in input order."""
  objects = [i for i, label in enumerate(labels) if _is_object(label)]
  backgrounds = [i for i, label in enumerate(labels) if not _is_object(label)]
  n_objects = min(len(objects), max(max_rows - len(backgrounds), (max_rows + 1) // 2))
  n_backgrounds = min(len(backgrounds), max_rows - n_objects)
  by_class = {}
  for i in objects:
    by_class.setdefault(_row_text(labels[i]), []).append(i)
  queues = list(by_class.values())
  picked = []
  while len(picked) < n_objects:
    for queue in queues:
      if queue and len(picked) < n_objects:
        picked.append(queue.pop(0))
  order = {name: k for k, name in enumerate(by_class)}
  picked.sort(key=lambda i: (order[_row_text(labels[i])], i))
  return picked + backgrounds[:n_backgrounds]


def _nearest_upsample(images, height, width):
  """[N, h, w, C] -> [N, height, width, C] by pixel replication (shows the real LR pixels)."""
  rows = (np.arange(height) * images.shape[1]) // height
  cols = (np.arange(width) * images.shape[2]) // width
  return images[:, rows][:, :, cols]


def plot_sr_grid(lr, bicubic, sr, hr, labels, out_path, max_rows=8):
  """Rows of LR (nearest up-sampled to HR size) | bicubic | SR | HR RoIs, face and background.

  Args:
    lr: [N, h, w, 3] low-resolution RoIs in model range [-1, 1].
    bicubic, sr, hr: [N, H, W, 3] in [-1, 1]: bicubic up-sampling, generator output, real HR.
      ``bicubic`` may be None to leave that column out.
    labels: N row labels, 1/True = face, 0/False = background, or class names ("face", "coin",
      "bg" / "background", ...).
    out_path: PNG to write.
    max_rows: at most this many rows, half objects (every class in turn) and half backgrounds
      where possible.
  Returns:
    out_path.
  """
  columns = [("LR (nearest)", lr), ("Bicubic", bicubic), ("SR (ours)", sr), ("HR", hr)]
  columns = [(title, np.asarray(imaging.to_uint8(images))) for title, images in columns
             if images is not None]
  labels = list(labels.tolist() if isinstance(labels, np.ndarray) else labels)
  n = columns[0][1].shape[0]
  for title, images in columns:
    if images.ndim != 4 or images.shape[0] != n:
      raise ValueError(f"plot_sr_grid: {title} has shape {images.shape}; expected [{n}, h, w, C]")
  if len(labels) != n:
    raise ValueError(f"plot_sr_grid: {len(labels)} labels for {n} RoIs")
  if n == 0 or max_rows < 1:
    raise ValueError("plot_sr_grid: nothing to plot")
  height, width = columns[-1][1].shape[1:3]
  columns[0] = (columns[0][0], _nearest_upsample(columns[0][1], height, width))
  rows = select_rows(labels, max_rows)
  fig = _new_figure(1.6 * len(columns) + 0.4, 1.6 * len(rows) + 0.3)
  axes = fig.subplots(len(rows), len(columns), squeeze=False)
  for r, index in enumerate(rows):
    for c, (title, images) in enumerate(columns):
      ax = axes[r, c]
      ax.imshow(images[index], interpolation="nearest")
      ax.set_xticks([])
      ax.set_yticks([])
      if r == 0:
        ax.set_title(title, fontsize=9)
      if c == 0:
        ax.set_ylabel(_row_text(labels[index]), fontsize=9)
  fig.tight_layout()
  return _save(fig, out_path, dpi=100)


def draw_detections(image, detections_xyxy, scores, ground_truth_xyxy, out_path,
                    score_threshold=0.0, dpi=100):
  """Draws ground-truth boxes (green) and detections (red, with their score) on ``image``.

  The PNG has the image's own pixel size; box edges land on the boxes' pixel coordinates.

  Args:
    image: uint8 [H, W, 3] (or float in model range [-1, 1]).
    detections_xyxy: [N, 4] pixel x1, y1, x2, y2. scores: [N].
    ground_truth_xyxy: [M, 4] or None.
    out_path: PNG to write.
    score_threshold: detections scoring below it are not drawn (0 draws all that are given).
  Returns:
    out_path.
  """
  image = np.asarray(image)
  if image.ndim != 3 or image.shape[-1] != 3:
    raise ValueError(f"draw_detections: expected an RGB image [H, W, 3], got {image.shape}")
  if image.dtype != np.uint8:
    if image.size and (image.min() < -1.0 or image.max() > 1.0):
      raise ValueError(f"draw_detections: a {image.dtype} image must be in model range [-1, 1]; "
                       f"got values in [{image.min()}, {image.max()}] (pass uint8 instead)")
    image = np.asarray(imaging.to_uint8(image))
  detections = np.asarray(detections_xyxy, np.float32).reshape(-1, 4)
  scores = np.asarray(scores, np.float32).reshape(-1)
  if len(scores) != len(detections):
    raise ValueError(f"draw_detections: {len(detections)} boxes but {len(scores)} scores")
  gt = (np.zeros([0, 4], np.float32) if ground_truth_xyxy is None
        else np.asarray(ground_truth_xyxy, np.float32).reshape(-1, 4))
  height, width = image.shape[:2]
  fig = _new_figure(width / dpi, height / dpi, dpi=dpi)
  ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
  ax.imshow(image, interpolation="nearest")
  ax.set_xlim(-0.5, width - 0.5)
  ax.set_ylim(height - 0.5, -0.5)
  ax.set_axis_off()
  # ~2 px lines on a 512 px image, at least 1 px; linewidth is in points (1 px = 72/dpi pt).
  line_px = max(1.0, min(height, width) / 256.0)
  linewidth = line_px * 72.0 / dpi
  font_pt = max(6.0, min(height, width) / 60.0) * 72.0 / dpi

  def box_patch(box, color):
    # imshow puts pixel i's centre at i, so continuous coordinate x sits at x - 0.5.
    x1, y1, x2, y2 = box
    return Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, edgecolor=color,
                     linewidth=linewidth, antialiased=False)

  for box in gt:
    ax.add_patch(box_patch(box, GT_COLOR))
  for box, score in zip(detections, scores):
    if score < score_threshold:
      continue
    ax.add_patch(box_patch(box, DETECTION_COLOR))
    # Score above the box, or inside it when the box touches the top border.
    above = box[1] > 2.0 * font_pt * dpi / 72.0
    ax.text(box[0] - 0.5, box[1] - 0.5 - (line_px if above else -line_px), f"{score:.2f}",
            color="white", fontsize=font_pt, va="bottom" if above else "top", ha="left",
            bbox=dict(facecolor=DETECTION_COLOR, edgecolor="none", pad=0.5), clip_on=True)
  return _save(fig, out_path, dpi=dpi)


def plot_context_crops(contexts, hr, lr, out_path):
  """The journal's Fig. 4: one RoI cropped with each context factor, HR above LR.

  Args:
    contexts: K context factors (column titles "x1.0", ...).
    hr: [K, H, W, 3] HR patches, lr: [K, h, w, 3] LR patches, both in model range [-1, 1].
    out_path: PNG to write.
  Returns:
    out_path.
  """
  hr, lr = np.asarray(imaging.to_uint8(hr)), np.asarray(imaging.to_uint8(lr))
  if not len(contexts) == hr.shape[0] == lr.shape[0] or len(contexts) == 0:
    raise ValueError(f"plot_context_crops: {len(contexts)} contexts, {hr.shape[0]} HR and "
                     f"{lr.shape[0]} LR patches")
  rows = [(f"HR {hr.shape[1]}x{hr.shape[2]}", hr),
          (f"LR {lr.shape[1]}x{lr.shape[2]}", _nearest_upsample(lr, *hr.shape[1:3]))]
  fig = _new_figure(1.5 * len(contexts) + 0.4, 1.5 * len(rows) + 0.3)
  axes = fig.subplots(len(rows), len(contexts), squeeze=False)
  for r, (name, images) in enumerate(rows):
    for c, context in enumerate(contexts):
      ax = axes[r, c]
      ax.imshow(images[c], interpolation="nearest")
      ax.set_xticks([])
      ax.set_yticks([])
      if r == 0:
        ax.set_title(f"x{float(context):.1f}", fontsize=9)
      if c == 0:
        ax.set_ylabel(name, fontsize=9)
  fig.tight_layout()
  return _save(fig, out_path, dpi=100)
