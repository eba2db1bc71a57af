"""What every RoI dataset builder shares (``wider_face_rois``, ``coco_rois``): config names, the
per-image seed, the example features, and one image's examples written in process or by Apache
Beam workers with undecodable images skipped and listed.

A family's builder supplies its raw-layout reading (``_split_generators``, an ``ImageExamples``
callable per split that turns one image record into (key, example) pairs) and mixes in
``RoiBuilderMixin``.
"""
import dataclasses
import hashlib
import importlib.util
import json
import os
from typing import Callable, Iterable, Iterator, Optional, Tuple

from absl import logging
import numpy as np
import tensorflow_datasets as tfds

from tinyfaces_tf import imaging
from tinyfaces_tf import roi_crop
from tinyfaces_tf.data import roi_sampler


def config_name(crop: roi_crop.CropConfig,
                sampler: roi_sampler.RoiSamplerConfig = roi_sampler.RoiSamplerConfig(),
                **extra) -> str:
  """The BuilderConfig name of a crop + sampler (+ family settings such as splits, in
  ``extra``): "x2.0" for the context factor with every other setting at its default, else
  "x2.0-<hash of the settings>" (so two settings never share a directory)."""
  name = f"x{crop.context:.1f}"
  defaults = (roi_crop.CropConfig(context=crop.context), roi_sampler.RoiSamplerConfig())
  if (crop, sampler) != defaults or extra:
    settings = [dataclasses.asdict(crop), dataclasses.asdict(sampler)] + ([extra] if extra else [])
    name += "-" + hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
  return name


def image_seed(name: str) -> int:
  """Per-image RNG seed from the image name: same RoIs whatever the order or the process.

  The seed does not depend on the context factor, so the x1.0 ... x4.0 configs sample the same
  RoIs and differ only in the crop (what journal Table 3 compares).
  """
  return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "little")


class UnreadableImageError(Exception):
  """An image that is missing or cannot be decoded: skipped and listed, the build goes on."""


def beam_available() -> bool:
  return importlib.util.find_spec("apache_beam") is not None


def roi_features(crop: roi_crop.CropConfig, label_doc: str, **extra) -> dict:
  """The features of one RoI example (``extra``: a family's additional features)."""
  hr, lr = crop.hr_size, crop.lr_size
  return {
      "lr": tfds.features.Image(shape=(lr, lr, 3), encoding_format="png",
                                doc="Bicubic down-sampling of hr by crop.scale."),
      "hr": tfds.features.Image(shape=(hr, hr, 3), encoding_format="png",
                                doc="Context window resized to the HR size."),
      "label": tfds.features.Scalar(np.int64, doc=label_doc),
      "box_target": tfds.features.Tensor(shape=(4,), dtype=np.float32,
                                         doc="Fast R-CNN deltas / (0.1, 0.1, 0.2, 0.2)."),
      "roi": tfds.features.Tensor(shape=(4,), dtype=np.float32,
                                  doc="RoI, pixel x1 y1 x2 y2 in the source image."),
      "iou": tfds.features.Scalar(np.float32, doc="Best IoU with a valid box."),
      **extra,
  }


def encode_examples(name: str, examples: dict, **extra) -> Iterator[Tuple[str, dict]]:
  """(key, example) pairs of one image's ``roi_sampler.make_training_examples`` output;
  ``extra`` maps a feature name to a per-RoI function of the RoI's index."""
  lr = imaging.to_uint8(examples["lr"]).numpy()
  hr = imaging.to_uint8(examples["hr"]).numpy()
  for i in range(len(lr)):
    yield f"{name}#{i}", {
        "lr": lr[i],
        "hr": hr[i],
        "label": int(examples["labels"][i]),
        "box_target": np.asarray(examples["box_targets"][i], np.float32),
        "roi": np.asarray(examples["rois"][i], np.float32),
        "iou": float(examples["ious"][i]),
        "image/filename": name,
        **{key: value(i) for key, value in extra.items()},
    }


class RoiBuilderMixin:
  """Builder arguments and example generation shared by the RoI builders (mixed into a
  ``tfds.core.GeneratorBasedBuilder``)."""

  def __init__(self, *args, beam: Optional[bool] = None, proposer: Optional[str] = None,
               skipped_dir: Optional[str] = None, **kwargs):
    """TFDS builder arguments, plus:

    Args:
      beam: build with Apache Beam (images spread over the runner's workers; TFDS's Beam dataset
        pattern, `--beam_pipeline_options` of `tfds build`). None: when apache-beam is
        installed. Either way gives the same examples (per-image keys and seeds).
      proposer: a proposer spec run on the images that have no stored proposals (in the
        workers, under Beam). None: such images get ground-truth jitter and random background
        windows only.
      skipped_dir: where "<name>-<config>-<split>-skipped_images.txt" lists the images a build
        skipped as undecodable (written only when there are some). None: they are logged and
        counted only (``skipped_images``; under Beam, the "skipped_images" metric).
    """
    super().__init__(*args, **kwargs)
    self.beam = beam_available() if beam is None else beam
    self.proposer, self.skipped_dir = proposer, skipped_dir
    # raw split -> [(path, reason)] of the images the last in-process build skipped.
    self.skipped_images = {}

  def skipped_report(self, split: str) -> Optional[str]:
    """The path a build lists the split's skipped images in (None without skipped_dir)."""
    if not self.skipped_dir:
      return None
    return os.path.join(self.skipped_dir,
                        f"{self.name}-{self.builder_config.name}-{split}-skipped_images.txt")

  def examples_of(self, records: Iterable, examples: Callable, image_path: Callable,
                  split: str):
    """The split's examples: ``examples(record)`` per image record, in process or as a Beam
    PTransform; ``image_path(record)`` names an image in the skipped report."""
    if self.beam:
      return _beam_examples(list(records), examples, image_path, self.skipped_report(split),
                            counter_namespace=self.name)
    return self._examples_in_process(records, examples, image_path, split)

  def _examples_in_process(self, records, examples, image_path, split):
    skipped = self.skipped_images.setdefault(split, [])
    for record in records:
      try:
        yield from examples(record)
      except UnreadableImageError as e:  # one bad file never stops a 32k-image build
        logging.warning("skipping %s", e)
        skipped.append((image_path(record), str(e)))
    if skipped and self.skipped_dir:
      imaging.write_skipped_report(self.skipped_report(split), skipped)


_SKIPPED = "skipped"


def _beam_examples(records, examples, image_path, skipped_report: Optional[str],
                   counter_namespace: str):
  """The Beam PTransform of a split: records -> workers -> (key, example) pairs; undecodable
  images go to the "skipped_images" counter and, with a report path, into that file."""
  beam = tfds.core.lazy_imports.apache_beam

  def image_examples(record):
    try:
      yield from examples(record)
    except UnreadableImageError as e:
      logging.warning("skipping %s", e)
      beam.metrics.Metrics.counter(counter_namespace, "skipped_images").inc()
      yield beam.pvalue.TaggedOutput(_SKIPPED, (image_path(record), str(e)))

  @beam.ptransform_fn
  def split_examples(root):
    outputs = (root
               | "Annotations" >> beam.Create(records)
               # Spreads the images over the workers (Create's output stays in one bundle).
               | "Reshuffle" >> beam.Reshuffle()
               | "Examples" >> beam.FlatMap(image_examples).with_outputs(_SKIPPED, main="examples"))
    if skipped_report:
      _ = (outputs[_SKIPPED]
           | "Skipped" >> beam.combiners.ToList()
           | "Report" >> beam.Map(_write_report, skipped_report))
    return outputs.examples

  return split_examples()  # pylint: disable=no-value-for-parameter


def _write_report(skipped, path):
  if skipped:  # nothing skipped: no file, as in the in-process build
    imaging.write_skipped_report(path, sorted(skipped))
