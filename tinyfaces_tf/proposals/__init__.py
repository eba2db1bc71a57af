"""Baseline proposers behind one interface (SPEC section 6): MTCNN, scikit-image's LBP cascade (a
weaker detector), stored WIDER result files and multi-scale windows.
COCO results files (``coco_results:FILE``) and selective search (class-agnostic, learning-free).
``make_proposer("mtcnn" | "lbp" | "results:DIR" | "coco_results:FILE" | "windows" |
"selective_search")`` builds one from a command-line string."""
import os

from tinyfaces_tf.proposals.base import DEFAULT_MAX_ROIS
from tinyfaces_tf.proposals.base import Proposals
from tinyfaces_tf.proposals.base import Proposer
from tinyfaces_tf.proposals.base import make_proposals
from tinyfaces_tf.proposals.coco_results import CocoResultsProposer
from tinyfaces_tf.proposals.lbp_cascade import LbpCascadeProposer
from tinyfaces_tf.proposals.mtcnn_proposer import MtcnnProposer
from tinyfaces_tf.proposals.results import ResultsProposer
from tinyfaces_tf.proposals.selective_search import SelectiveSearchProposer
from tinyfaces_tf.proposals.windows import SlidingWindowProposer

SPECS = ("mtcnn", "lbp", "results:DIR", "coco_results:FILE", "windows",
         "selective_search[:fast|single]")


def make_proposer(spec, category_ids=None, **kwargs):
  """Builds a proposer from ``spec``; ``kwargs`` go to its constructor (e.g. ``max_rois=100``);
  ``category_ids`` (a COCO dataset's, label order) give coco_results proposals their labels.

  Raises ValueError naming ``spec`` if it is not one of "mtcnn", "lbp", "results:DIR" (DIR an
  existing directory), "coco_results:FILE" (an existing file), "windows" or
  "selective_search" (optionally ":fast", the default, or ":single", the paper's modes).
  """
  if not isinstance(spec, str):
    raise ValueError(f"proposer spec must be a string, got {spec!r}")
  name, sep, arg = spec.strip().partition(":")
  if name == "mtcnn" and not sep:
    return MtcnnProposer(**kwargs)
  if name == "lbp" and not sep:
    return LbpCascadeProposer(**kwargs)
  if name == "windows" and not sep:
    return SlidingWindowProposer(**kwargs)
  if name == "selective_search":
    from tinyfaces_tf.proposals import selective_search  # pylint: disable=g-import-not-at-top
    if (arg or "fast") not in selective_search.MODES:
      raise ValueError(f"proposer spec {spec!r}: modes are "
                       f"{', '.join(selective_search.MODES)}")
    return SelectiveSearchProposer(**selective_search.MODES[arg or "fast"], **kwargs)
  if name == "results" and sep:
    if not arg:
      raise ValueError(f"proposer spec {spec!r}: give the directory, 'results:DIR'")
    if not os.path.isdir(arg):
      raise ValueError(f"proposer spec {spec!r}: {arg} is not a directory")
    return ResultsProposer(arg, **kwargs)
  if name == "coco_results" and sep:
    if not os.path.isfile(arg):
      raise ValueError(f"proposer spec {spec!r}: {arg or 'FILE'} is not a file")
    return CocoResultsProposer(arg, category_ids=category_ids, **kwargs)
  raise ValueError(f"unknown proposer spec {spec!r}; expected one of {', '.join(SPECS)}")


__all__ = ["CocoResultsProposer", "DEFAULT_MAX_ROIS", "LbpCascadeProposer", "MtcnnProposer",
           "Proposals", "Proposer", "ResultsProposer", "SelectiveSearchProposer",
           "SlidingWindowProposer", "make_proposals", "make_proposer"]
