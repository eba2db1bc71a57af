"""WIDER result files, the one format every detector's output and every proposal file uses here.

``<results_dir>/<event>/<stem>.txt``: the image stem, the box count, then one ``x y w h score``
line per box (what the official eval_tools reads). Scores and boxes are read as float64, as
MATLAB reads them, by every reader in the package.
"""
import os

import numpy as np

from tinyfaces_tf import atomic


def read_text_lines(path) -> list:
  """A text file's lines (LF or CRLF, a UTF-8 byte-order mark accepted) without trailing blank
  lines; a file that is not UTF-8 text raises ValueError naming it. Shared by the readers of
  WIDER's annotation files and of result files."""
  try:
    with open(path, encoding="utf-8-sig") as f:
      lines = f.read().splitlines()
  except UnicodeDecodeError as e:
    line = e.object[:e.start].count(b"\n") + 1
    raise ValueError(f"{path}:{line}: not UTF-8 text ({e.reason})") from None
  while lines and not lines[-1].strip():
    lines.pop()
  return lines


def split_image_name(name):
  """"event/stem(.jpg)" -> (event, stem). One folder and one file, neither "." nor "..", so a
  result path built from a name stays inside its results directory."""
  name = str(name).replace(os.sep, "/")
  if name.endswith(".jpg"):
    name = name[:-len(".jpg")]
  parts = name.split("/")
  if len(parts) != 2 or any(p in ("", ".", "..") for p in parts):
    raise ValueError(f"image name {name!r} is not of the form 'event/stem[.jpg]' (one folder, "
                     f"no '..' or absolute path)")
  return parts[0], parts[1]



def result_path(results_dir, image_name):
  """``<results_dir>/<event>/<stem>.txt`` for ``image_name`` "event/stem[.jpg]"."""
  event, stem = split_image_name(image_name)
  return os.path.join(os.fspath(results_dir), event, stem + ".txt")


def write_result_file(results_dir, image_name, boxes_xywh, scores):
  """Writes ``<results_dir>/<event>/<stem>.txt`` in the WIDER result format; returns its path.

  Args:
    image_name: "event/stem.jpg" or "event/stem".
    boxes_xywh: [K, 4] x, y, w, h.
    scores: [K].
  """
  path = result_path(results_dir, image_name)
  stem = split_image_name(image_name)[1]
  boxes = np.asarray(boxes_xywh, np.float64).reshape(-1, 4)
  scores = np.asarray(scores, np.float64).reshape(-1)
  if len(boxes) != len(scores):
    raise ValueError(f"{image_name}: {len(boxes)} boxes but {len(scores)} scores")
  lines = [stem, str(len(boxes))]
  # %.9g round-trips float32 exactly.
  lines += [" ".join(f"{v:.9g}" for v in (*box, score)) for box, score in zip(boxes, scores)]
  return atomic.write_text(path, "\n".join(lines) + "\n")  # a killed job leaves no half file


def read_result_file(path):
  """Reads one WIDER result file -> (boxes_xywh float64 [K, 4], scores float64 [K]).

  Raises ValueError naming the file and line on malformed content or a wrong count.
  """
  path = os.fspath(path)
  lines = [line.strip() for line in read_text_lines(path)]
  if len(lines) < 2:
    raise ValueError(f"{path}:{len(lines) + 1}: expected an image name line and a count line")
  try:
    count = int(float(lines[1]))
    if count < 0 or count != float(lines[1]):
      raise ValueError
  except ValueError:
    raise ValueError(f"{path}:2: bad box count {lines[1]!r}") from None
  rows = lines[2:]
  if len(rows) != count:
    raise ValueError(f"{path}:2: count says {count} boxes but the file has {len(rows)}")
  values = np.zeros((count, 5), np.float64)
  for k, row in enumerate(rows):
    fields = row.split()
    try:
      if len(fields) != 5:
        raise ValueError
      values[k] = [float(v) for v in fields]
    except ValueError:
      raise ValueError(f"{path}:{k + 3}: expected 'x y w h score', got {row!r}") from None
    if not np.all(np.isfinite(values[k])):
      raise ValueError(f"{path}:{k + 3}: non-finite value in {row!r}")
  return values[:, :4], values[:, 4]


def read_result_dir(results_dir):
  """Reads every ``<event>/<stem>.txt`` -> {"event/stem": (boxes_xywh, scores)}.

  Keys come from the file paths (as the MATLAB eval_tools does), not from the first line.
  """
  results_dir = os.fspath(results_dir)
  if not os.path.isdir(results_dir):
    raise FileNotFoundError(f"result directory not found: {results_dir}")
  results = {}
  for event in sorted(os.listdir(results_dir)):
    event_dir = os.path.join(results_dir, event)
    if not os.path.isdir(event_dir):
      continue
    for name in sorted(os.listdir(event_dir)):
      if name.endswith(".txt"):
        results[f"{event}/{name[:-len('.txt')]}"] = read_result_file(
            os.path.join(event_dir, name))
  return results


def write_detections(results_dir, image_name, boxes_xyxy, scores):
  """``write_result_file`` for x1, y1, x2, y2 boxes (what proposers and the detector return)."""
  from tinyfaces_tf import boxes as box_ops  # pylint: disable=g-import-not-at-top (imports TF)
  return write_result_file(results_dir, image_name, box_ops.xyxy_to_xywh(boxes_xyxy), scores)
