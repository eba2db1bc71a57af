"""The task layer: everything an entry point builds from an ExperimentConfig.

In the manner of Model Garden's ``Task``: ``build_models``, ``build_rois`` and
``build_train_dataset``, ``build_detector``, ``build_proposer`` and ``build_evaluator``, all from
one config; the dataset family comes in through its adapter (``data/adapters.py``).
``tinyfaces-train``, ``tinyfaces-detect``, ``tinyfaces-export``, the demo job and
``experiments/run.py`` all go through here.
"""
import os
from typing import Callable, Optional, Tuple

from tinyfaces_tf import config as config_lib
from tinyfaces_tf.data import adapters


class Task:
  """Builders for one experiment; ``root`` is the dataset family's raw root where needed."""

  def __init__(self, config: config_lib.ExperimentConfig, root: Optional[str] = None):
    self.config = config
    self.adapter = adapters.get_adapter(config.data.family, root)

  @classmethod
  def from_run_dir(cls, run_dir: str, root: Optional[str] = None) -> "Task":
    return cls(config_lib.load_run_config(run_dir), root)

  # Models ------------------------------------------------------------------------------------

  def build_models(self):
    """(generator, discriminator) of the config, under the current Keras dtype policy."""
    from tinyfaces_tf import models  # pylint: disable=g-import-not-at-top
    cfg = self.config
    generator = models.build_generator(cfg.generator.kind, config=cfg.generator,
                                       scale=cfg.crop.scale)
    discriminator = models.build_discriminator(
        cfg.discriminator.backbone, cfg.discriminator.num_classes, config=cfg.discriminator,
        hr_size=cfg.crop.hr_size)
    return generator, discriminator

  def restore_models(self, run_dir: str, checkpoint: Optional[str] = None):
    """(generator, discriminator) with the weights of a run's latest (or given) checkpoint."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    checkpoint = checkpoint or tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
    if not checkpoint:
      raise FileNotFoundError(f"{os.path.join(run_dir, 'checkpoints')}: no checkpoint to restore")
    generator, discriminator = self.build_models()
    tf.train.Checkpoint(generator=generator, discriminator=discriminator).restore(
        checkpoint).expect_partial()
    return generator, discriminator

  # Training data -----------------------------------------------------------------------------

  @property
  def rois_config_name(self) -> str:
    """The TFDS BuilderConfig of this config's RoIs (crop + sampler)."""
    return self.adapter.roi_config_name(self.config.crop, self.config.sampler)

  def build_rois(self, tfds_dir: str) -> dict:
    """Builds the training RoIs of this config from the adapter's root into ``tfds_dir`` (a no-op
    when built); returns {split: examples}. Undecodable images are skipped and listed in
    ``tfds_dir/<dataset>-<config>-skipped_images.txt``."""
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    builder = self.adapter.roi_builder(self.config.crop, self.config.sampler, tfds_dir)
    if not builder.is_prepared():
      print(f"Cutting {self.adapter.rois_dataset}/{builder.builder_config.name} RoIs into "
            f"{tfds_dir}", flush=True)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=os.path.abspath(self.adapter.require_root())))
    skipped = [item for items in getattr(builder, "skipped_images", {}).values() for item in items]
    if skipped:
      from tinyfaces_tf import imaging  # pylint: disable=g-import-not-at-top
      report = imaging.write_skipped_report(os.path.join(
          tfds_dir, f"{self.adapter.rois_dataset}-{builder.builder_config.name}"
                    "-skipped_images.txt"), skipped)
      for path, reason in skipped[-10:]:
        print(f"skipped {path}: {reason}")
      print(f"{len(skipped)} undecodable image(s) skipped, listed in {report}", flush=True)
    return {split: info.num_examples for split, info in builder.info.splits.items()}

  def build_train_dataset(self, tfds_dir: str, split: str = "train"
                          ) -> Tuple[Callable[[int], "tf.data.Dataset"], int]:
    """(make_dataset(seed) -> infinite batched dataset, steps per epoch) from built RoIs."""
    from tinyfaces_tf.data import pipeline  # pylint: disable=g-import-not-at-top
    cfg = self.config
    name, dataset_name = self.rois_config_name, self.adapter.rois_dataset
    source = pipeline.load_split(tfds_dir, split, name, dataset_name=dataset_name)
    examples = pipeline.count_examples(tfds_dir, split, name, dataset_name=dataset_name)
    steps_per_epoch = max(1, examples // cfg.train.batch_size)

    def make_dataset(seed):
      return pipeline.make_training_dataset(
          source, cfg.pipeline, cfg.train.batch_size, seed=seed,
          deterministic=cfg.train.deterministic, crop=cfg.crop)

    return make_dataset, steps_per_epoch

  def build_synthetic_dataset(self) -> Callable[[int], "tf.data.Dataset"]:
    """make_dataset(seed) of random batches shaped like this config's patches."""
    from tinyfaces_tf.training import synthetic  # pylint: disable=g-import-not-at-top
    cfg = self.config
    return lambda seed: synthetic.synthetic_dataset(
        cfg.train.batch_size, seed, cfg.crop, cfg.discriminator.num_classes)

  def train(self, make_dataset, out_dir: str, steps_per_epoch: Optional[int] = None,
            strategy=None):
    """Trains (or resumes) in ``out_dir``; returns (TrainResult, gan)."""
    from tinyfaces_tf.training import loop  # pylint: disable=g-import-not-at-top
    return loop.train(self, make_dataset, out_dir, steps_per_epoch, strategy)

  # Detection and evaluation -------------------------------------------------------------------

  def build_detector(self, generator, discriminator):
    """The graph detector of the config's crop and detection settings."""
    from tinyfaces_tf.detection import detector  # pylint: disable=g-import-not-at-top
    return detector.Detector(generator, discriminator, self.config.crop, self.config.detect)

  def export(self, generator, discriminator, path: str) -> str:
    """A SavedModel of the detector, with this config in its assets."""
    from tinyfaces_tf import export  # pylint: disable=g-import-not-at-top
    return export.export_saved_model(generator, discriminator, path, self.config)

  def build_proposer(self, spec: str):
    """A proposer from its spec ("mtcnn", "results:DIR", "windows"), capped at the config's RoI
    budget per image."""
    from tinyfaces_tf import proposals  # pylint: disable=g-import-not-at-top
    return proposals.make_proposer(spec, max_rois=self.config.detect.max_rois)

  def build_evaluator(self) -> Callable[..., dict]:
    """evaluate({label: results_dir}, out_dir) -> {label: metrics} with the family's protocol."""
    return self.adapter.evaluate
