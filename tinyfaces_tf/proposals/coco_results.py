"""Proposals read from a COCO results file (``coco_results:FILE``): the JSON list
``{image_id, category_id, bbox [x, y, w, h], score}`` that Detectron2, MMDetection and
torchvision write, so a published detector's output becomes RoIs without re-running it.

Images are found by id: COCO file names end in the image id. With the categories of the dataset
(``category_ids``, label k's id at index k - 1) the proposals carry their class as a label 1..K
(MTGAN Table 6's ensemble multiplies by the score of the same class); without, they are
class-agnostic.
"""
from typing import Optional, Sequence

import numpy as np

from tinyfaces_tf.data import coco
from tinyfaces_tf.proposals import base


class CocoResultsProposer(base.Proposer):
  """One results file for a whole split; an image without entries has no proposals."""

  def __init__(self, path: str, max_rois: int = base.DEFAULT_MAX_ROIS,
               category_ids: Optional[Sequence[int]] = None):
    self.path, self.max_rois = path, max_rois
    self.by_image = coco.read_results_file(path)
    self.label_of = (None if category_ids is None else
                     {int(c): label for label, c in enumerate(category_ids, start=1)})

  def propose(self, image, image_name=None):
    del image  # the stored boxes are the proposals
    if not image_name:
      raise ValueError("CocoResultsProposer needs the image's name (it ends in the image id)")
    found = self.by_image.get(coco.image_id_from_name(image_name))
    if found is None:
      return base.make_proposals(np.zeros((0, 4)), np.zeros(0), self.max_rois,
                                 None if self.label_of is None else np.zeros(0))
    labels = (None if self.label_of is None else
              [self.label_of.get(int(c), 0) for c in found.category_ids])
    return base.make_proposals(found.boxes_xyxy, found.scores, self.max_rois, labels)
