"""The task layer: everything an entry point builds from an ExperimentConfig.

In the manner of Model Garden's ``Task``: ``build_models``, ``build_rois`` and
``build_train_dataset``, ``build_detector``, ``build_proposer`` and ``build_evaluator``, all from
one config; the dataset family comes in through its adapter (``data/adapters.py``).
``tinyfaces-train``, ``tinyfaces-detect``, ``tinyfaces-export``, the demo job and
``experiments/run.py`` all go through here.
"""
import glob
import os
from typing import Callable, Optional, Tuple

from tinyfaces_tf import config as config_lib
from tinyfaces_tf.data import adapters


# make_dataset(seed, input_context=None) -> tf.data.Dataset of training batches.
MakeDataset = Callable[..., "tf.data.Dataset"]


def _batch_size(global_batch, input_context):
  return input_context.get_per_replica_batch_size(global_batch) if input_context else global_batch


# Beam's default DirectRunner first tries Prism, which downloads a binary from GitHub at run
# time (and falls back when offline); the local runner it falls back to is named instead.
LOCAL_BEAM_RUNNER = "FnApiRunner"


def beam_pipeline_options_of(options: Optional[str]):
  """PipelineOptions of "opt=value,..." (`tfds build --beam_pipeline_options`), run by
  LOCAL_BEAM_RUNNER unless they name a runner."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  flags = [f"--{option}" for option in (options or "").split(",") if option]
  if not any(flag.startswith("--runner=") for flag in flags):
    flags.append(f"--runner={LOCAL_BEAM_RUNNER}")
  return tfds.core.lazy_imports.apache_beam.options.pipeline_options.PipelineOptions(flags=flags)


class Task:
  """Builders for one experiment; ``root`` is the dataset family's raw root where needed."""

  def __init__(self, config: config_lib.ExperimentConfig, root: Optional[str] = None):
    self.config = config
    self.adapter = adapters.get_adapter(config.data.family, root, config.data.train_split,
                                        config.data.eval_split)

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
    from tinyfaces_tf.training import loop  # pylint: disable=g-import-not-at-top
    directory = os.path.join(run_dir, "checkpoints")
    # The state file's latest; else the newest on disk (a state file lost or listing nothing).
    checkpoint = (checkpoint or tf.train.latest_checkpoint(directory)
                  or (loop.checkpoints_on_disk(directory) or [None])[-1])
    if not checkpoint:
      raise FileNotFoundError(f"{directory}: no checkpoint to restore")
    generator, discriminator = self.build_models()
    tf.train.Checkpoint(generator=generator, discriminator=discriminator).restore(
        checkpoint).expect_partial()
    return generator, discriminator

  # Training data -----------------------------------------------------------------------------

  @property
  def rois_config_name(self) -> str:
    """The TFDS BuilderConfig of this config's RoIs (crop + sampler)."""
    return self.adapter.roi_config_name(self.config.crop, self.config.sampler)

  def build_rois(self, tfds_dir: str, proposer: Optional[str] = None,
                 beam_pipeline_options: Optional[str] = None) -> dict:
    """Builds the training RoIs of this config from the adapter's root into ``tfds_dir`` (a no-op
    when built); returns {split: examples}.

    Args:
      tfds_dir: the TFDS data_dir.
      proposer: a proposer spec run (in the workers) on images without a proposal file.
      beam_pipeline_options: "opt=value,..." as `tfds build --beam_pipeline_options` takes them
        (e.g. "direct_num_workers=2,direct_running_mode=multi_processing", or a Dataflow / Flink /
        Spark runner's options). Beam is used whenever apache-beam is installed (in-process
        DirectRunner without options); the examples are the same either way.

    Undecodable images are skipped and listed in
    ``tfds_dir/<dataset>-<config>-<split>-skipped_images.txt``.
    """
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    builder = self.adapter.roi_builder(self.config.crop, self.config.sampler, tfds_dir,
                                       proposer=proposer, skipped_dir=tfds_dir)
    reports = os.path.join(tfds_dir, f"{builder.name}-{builder.builder_config.name}-*"
                                     "-skipped_images.txt")
    if not builder.is_prepared():
      print(f"Cutting {builder.name}/{builder.builder_config.name} RoIs into {tfds_dir}"
            f"{' with Apache Beam' if builder.beam else ''}", flush=True)
      for stale in glob.glob(reports):
        os.remove(stale)
    beam_options = None
    if builder.beam:
      beam_options = beam_pipeline_options_of(beam_pipeline_options)
    elif beam_pipeline_options:
      raise ValueError("beam_pipeline_options given but apache-beam is not installed "
                       "(pip install 'tinyfaces_tf[beam]')")
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=os.path.abspath(self.adapter.require_root()), beam_options=beam_options))
    for report in sorted(glob.glob(reports)):
      with open(report) as f:
        skipped = [line.rstrip("\n").split("\t", 1) for line in f]
      for path, reason in skipped[-10:]:
        print(f"skipped {path}: {reason}")
      print(f"{len(skipped)} undecodable image(s) skipped, listed in {report}", flush=True)
    return {split: info.num_examples for split, info in builder.info.splits.items()}

  def build_train_dataset(self, tfds_dir: str, split: str = "train"
                          ) -> Tuple[MakeDataset, int]:
    """(make_dataset(seed, input_context=None) -> infinite batched dataset, steps per epoch) from
    built RoIs. With an input context (tf.distribute), the dataset is that input pipeline's shard
    of the examples, batched at the per-replica size."""
    from tinyfaces_tf.data import pipeline  # pylint: disable=g-import-not-at-top
    cfg = self.config
    name, dataset_name = self.rois_config_name, self.adapter.rois_dataset
    source = pipeline.load_split(tfds_dir, split, name, dataset_name=dataset_name)
    examples = pipeline.count_examples(tfds_dir, split, name, dataset_name=dataset_name)
    steps_per_epoch = max(1, examples // cfg.train.batch_size)

    def make_dataset(seed, input_context=None):
      return pipeline.make_training_dataset(
          source, cfg.pipeline, _batch_size(cfg.train.batch_size, input_context), seed=seed,
          deterministic=cfg.train.deterministic, crop=cfg.crop, input_context=input_context)

    return make_dataset, steps_per_epoch

  def build_synthetic_dataset(self) -> MakeDataset:
    """make_dataset(seed, input_context=None) of random batches shaped like this config's
    patches (each input pipeline draws its own)."""
    from tinyfaces_tf.training import synthetic  # pylint: disable=g-import-not-at-top
    cfg = self.config

    def make_dataset(seed, input_context=None):
      pipeline_id = input_context.input_pipeline_id if input_context else 0
      return synthetic.synthetic_dataset(_batch_size(cfg.train.batch_size, input_context),
                                         seed + pipeline_id, cfg.crop,
                                         cfg.discriminator.num_classes)

    return make_dataset

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

  def export(self, generator, discriminator, path: str, strategy=None) -> Optional[str]:
    """A SavedModel of the detector, with this config in its assets. Under a multi-worker
    ``strategy`` every worker must call this; only the chief's export is kept (and its path
    returned; None elsewhere)."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from tinyfaces_tf import export  # pylint: disable=g-import-not-at-top
    from tinyfaces_tf.training import workers  # pylint: disable=g-import-not-at-top
    strategy = strategy or tf.distribute.get_strategy()
    with workers.write_dir(path, strategy) as own_path:
      written = export.export_saved_model(generator, discriminator, own_path, self.config)
    return written if own_path == path else None

  def build_proposer(self, spec: str):
    """A proposer from its spec ("mtcnn", "results:DIR", "coco_results:FILE", "windows"),
    capped at the config's RoI budget per image; COCO results get the dataset's labels."""
    from tinyfaces_tf import proposals  # pylint: disable=g-import-not-at-top
    category_ids = None
    if spec.startswith("coco_results:") and self.adapter.root is not None:
      category_ids = self.adapter.category_ids()
    return proposals.make_proposer(spec, category_ids=category_ids,
                                   max_rois=self.config.detect.max_rois)

  def build_evaluator(self) -> Callable[..., dict]:
    """evaluate({label: results_dir}, out_dir) -> {label: metrics} with the family's protocol."""
    return self.adapter.evaluate
