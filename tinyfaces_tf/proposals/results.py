"""Proposals read from any detector's WIDER-format result files (``<dir>/<event>/<stem>.txt``).

This is how published detectors' outputs (or our own baseline runs) become RoIs for the GAN
detector without re-running them.
"""
import glob
import os

import numpy as np

from tinyfaces_tf import boxes as box_ops
from tinyfaces_tf.data import result_files
from tinyfaces_tf.proposals import base


class ResultsProposer(base.Proposer):
  """Reads one result file per image; boxes come back as xyxy, sorted by the file's scores.

  ``image_name`` is "event/stem.jpg" (what WIDER's split files list). A bare "stem.jpg" (e.g. a
  single image given on the command line) is looked up in every event folder and must match
  exactly one file.
  """

  def __init__(self, results_dir, max_rois=base.DEFAULT_MAX_ROIS):
    if not os.path.isdir(results_dir):
      raise FileNotFoundError(f"results directory {results_dir} does not exist")
    self.results_dir = results_dir
    self.max_rois = max_rois

  def path_for(self, image_name):
    """The result file for ``image_name``; FileNotFoundError naming the path if there is none."""
    if not image_name:
      raise ValueError("ResultsProposer needs the image's name ('event/stem.jpg')")
    image_name = image_name.replace(os.sep, "/")
    path = (result_files.result_path(self.results_dir, image_name) if "/" in image_name
            else os.path.join(self.results_dir, os.path.splitext(image_name)[0] + ".txt"))
    if os.path.isfile(path):
      return path
    if "/" not in image_name:
      stem = os.path.splitext(image_name)[0]
      matches = sorted(glob.glob(os.path.join(glob.escape(self.results_dir), "*",
                                              glob.escape(stem) + ".txt")))
      if len(matches) == 1:
        return matches[0]
      if len(matches) > 1:
        raise FileNotFoundError(f"{image_name}: ambiguous, {len(matches)} result files match "
                                f"({matches[0]}, {matches[1]}, ...); give 'event/{image_name}'")
    raise FileNotFoundError(f"no result file for {image_name}: {path} does not exist")

  def propose(self, image, image_name=None):
    del image  # the stored boxes are the proposals; the image is not needed
    path = self.path_for(image_name)
    boxes_xywh, scores = result_files.read_result_file(path)
    boxes = box_ops.xywh_to_xyxy(np.asarray(boxes_xywh, np.float32).reshape(-1, 4))
    return base.make_proposals(boxes, scores, self.max_rois)
