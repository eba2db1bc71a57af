"""tf.data input for GAN training from `wider_face_rois` examples (SPEC section 5).

Examples are the TFDS feature dicts the `tinyfaces_tf/datasets/wider_face_rois` builder writes: `lr` uint8
[16,16,3], `hr` uint8 [64,64,3] (decoded or still PNG-encoded), `label` (1 = face / 1..K object,
0 = background, -1 = ignored), `box_target` float32 [4], plus `roi`, `iou`, `image/filename`.
Batches are the dict the GAN's `train_step` takes:
`{"lr": f32 [B,16,16,3] in [-1,1], "hr": f32 [B,64,64,3] in [-1,1], "label": i32 [B],
"box_target": f32 [B,4]}`.

Order of operations: split foreground / background (ignored RoIs in neither) -> shuffle + repeat
each -> `sample_from_datasets` at the configured foreground fraction -> decode + rescale (parallel
map) -> batch (drop_remainder, static shapes) -> prefetch. Shuffling before decoding keeps the
shuffle buffers small (encoded PNGs are a few hundred bytes).
"""
import dataclasses
from typing import Callable, Optional, Union

import tensorflow as tf

from tinyfaces_tf.imaging import to_model_range
from tinyfaces_tf.roi_crop import DEFAULT_CROP
from tinyfaces_tf.roi_crop import CropConfig

AUTOTUNE = tf.data.AUTOTUNE
TRAIN_KEYS = ("lr", "hr", "label", "box_target")


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
  """Input-pipeline settings (the batch size and seed are the run's: TrainConfig).

  Attributes:
    face_fraction: fraction of foreground (label >= 1) RoIs per batch in expectation; 0.4 is the
      journal's "about 1.5 background per face". None keeps the dataset's natural mix.
    shuffle_buffer: per-class shuffle buffer (examples); 0 or 1 disables shuffling.
    repeat: repeat forever. With repeat=False and a face_fraction, an epoch ends as soon as
      either class runs out (the ratio is kept; the rest of the larger class is not seen).
    num_parallel_calls: parallelism of the decode map (-1: tf.data AUTOTUNE).
    prefetch: batches to prefetch (-1: AUTOTUNE).
    drop_remainder: drop the last short batch so batch shapes are static (needed for XLA / TPU).
  """
  face_fraction: Optional[float] = 0.4
  shuffle_buffer: int = 4096
  repeat: bool = True
  num_parallel_calls: int = AUTOTUNE
  prefetch: int = AUTOTUNE
  drop_remainder: bool = True

  def __post_init__(self):
    if self.face_fraction is not None and not 0.0 <= self.face_fraction <= 1.0:
      raise ValueError(
          f"pipeline.face_fraction must be in [0, 1] or None, got {self.face_fraction}")
    if self.shuffle_buffer < 0:
      raise ValueError(f"pipeline.shuffle_buffer must be >= 0, got {self.shuffle_buffer}")


Source = Union[tf.data.Dataset, Callable[[], tf.data.Dataset], "tfds.core.DatasetBuilder"]


def load_split(data_dir, split, config_name, decode=False, dataset_name="wider_face_rois"):
  """Reads a built `wider_face_rois` split from `data_dir` (no builder code needed).

  Args:
    data_dir: the TFDS data_dir given to `tfds build --data_dir` (holds `wider_face_rois/`), or
      the builder's versioned directory itself (`.../wider_face_rois/x2.0/1.0.0`).
    split: "train", "validation" or any TFDS split expression ("train[:10%]").
    config_name: the BuilderConfig ("x1.0" ... "x4.0"; builder.config_name of a crop).
    decode: decode the images in TFDS (uint8 tensors). False (default) leaves them PNG-encoded
      so `make_training_dataset` decodes them in its parallel map after shuffling.

  Returns:
    a tf.data.Dataset of feature dicts.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top  (slow import)
  builder = _builder_from_dir(data_dir, config_name, dataset_name)
  decoders = None if decode else {"lr": tfds.decode.SkipDecoding(),
                                  "hr": tfds.decode.SkipDecoding()}
  return builder.as_dataset(split=split, decoders=decoders, shuffle_files=False)


def count_examples(data_dir, split, config_name, dataset_name="wider_face_rois"):
  """Examples in a built split, from its metadata (ignored RoIs, label -1, included)."""
  return _builder_from_dir(data_dir, config_name, dataset_name).info.splits[split].num_examples


def _builder_from_dir(data_dir, config_name, dataset_name):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from etils import epath  # pylint: disable=g-import-not-at-top
  root = epath.Path(data_dir)
  if (root / "dataset_info.json").exists():
    return tfds.builder_from_directory(root)
  config_dir = root / dataset_name / config_name
  if not config_dir.exists():
    raise FileNotFoundError(
        f"No built {dataset_name}/{config_name} under data_dir={data_dir}; run "
        f"`tfds build tinyfaces_tf/datasets/{dataset_name} --config={config_name} "
        f"--data_dir={data_dir} --manual_dir=WIDER_ROOT` first")
  versions = sorted((p for p in config_dir.iterdir() if (p / "dataset_info.json").exists()),
                    key=lambda p: tuple(int(x) for x in p.name.split(".")))
  if not versions:
    raise FileNotFoundError(f"{config_dir} holds no finished version (no dataset_info.json)")
  return tfds.builder_from_directory(versions[-1])


def _as_dataset(source, split):
  """Dataset from a tf.data.Dataset, a zero-argument callable or a TFDS builder."""
  if isinstance(source, tf.data.Dataset):
    return source
  if hasattr(source, "as_dataset"):  # tfds.core.DatasetBuilder / ReadOnlyBuilder
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    return source.as_dataset(split=split, shuffle_files=False,
                             decoders={"lr": tfds.decode.SkipDecoding(),
                                       "hr": tfds.decode.SkipDecoding()})
  if callable(source):
    dataset = source()
    if not isinstance(dataset, tf.data.Dataset):
      raise TypeError(f"source() returned {type(dataset).__name__}, expected tf.data.Dataset")
    return dataset
  raise TypeError(
      f"source must be a tf.data.Dataset, a DatasetBuilder or a callable, got {type(source)}")


def _image(value, shape):
  """uint8 image (or PNG bytes) -> float32 [-1, 1] with a static shape."""
  if value.dtype == tf.string:
    value = tf.io.decode_png(value, channels=shape[-1])
  value = tf.ensure_shape(value, shape)
  return to_model_range(value)


def _train_example_fn(crop: CropConfig):
  """Decoder of one stored example; a dataset with other patch sizes than ``crop`` is rejected by
  ensure_shape."""
  lr_shape, hr_shape = (crop.lr_size, crop.lr_size, 3), (crop.hr_size, crop.hr_size, 3)
  return lambda example: {
      "lr": _image(example["lr"], lr_shape),
      "hr": _image(example["hr"], hr_shape),
      "label": tf.cast(example["label"], tf.int32),
      "box_target": tf.ensure_shape(tf.cast(example["box_target"], tf.float32), [4]),
  }


def _keep_train_keys(example):
  missing = [k for k in TRAIN_KEYS if k not in example]
  if missing:
    raise KeyError(f"source examples lack {missing}; they have {sorted(example)}")
  return {k: example[k] for k in TRAIN_KEYS}


# Examples per vectorised label selection. The class split is the serial part of the pipeline
# (each class reads the whole source, so about 3.3 examples pass it per RoI at a 0.4 face
# fraction); one boolean mask per block instead of one filter call per example is 3x its rate and
# keeps the same examples in the same order (BUILD_NOTES "Performance").
SELECT_BLOCK = 256


def _select(dataset, keep_label):
  """The examples whose label passes ``keep_label`` (a vectorised predicate), in source order."""
  def mask(block):
    keep = keep_label(block["label"])
    return {key: tf.boolean_mask(value, keep) for key, value in block.items()}
  return dataset.batch(SELECT_BLOCK).map(mask).unbatch()


def _seed(seed, offset):
  return None if seed is None else seed + offset


def _shuffle_repeat(dataset, config, seed, offset):
  if config.shuffle_buffer > 1:
    dataset = dataset.shuffle(config.shuffle_buffer, seed=_seed(seed, offset),
                              reshuffle_each_iteration=True)
  return dataset.repeat() if config.repeat else dataset


def make_training_dataset(source: Source, config: PipelineConfig, batch_size: int,
                          seed: Optional[int] = 0, deterministic: bool = False,
                          crop: CropConfig = DEFAULT_CROP, split: str = "train",
                          input_context: Optional[tf.distribute.InputContext] = None):
  """Training batches from `wider_face_rois` examples.

  Args:
    source: a tf.data.Dataset of feature dicts (`load_split`, `tfds.load`, or in-memory), a
      TFDS builder (its `split` is read), or a zero-argument callable returning a dataset.
    config: PipelineConfig.
    batch_size: examples per batch (the per-replica size under tf.distribute).
    seed: seed for shuffling and class sampling; None draws fresh randomness each run.
    deterministic: keep element order fixed (tf.data `options.deterministic`); needs `seed`.
    crop: the CropConfig the examples were cut with (their patch shapes).
    split: the split read when `source` is a TFDS builder.
    input_context: under tf.distribute (``training.loop.distributed_input``): the source is
      sharded per input pipeline (worker), and ``batch_size`` is the per-replica batch.

  Returns:
    tf.data.Dataset of dicts lr/hr/label/box_target (see module docstring).
  """
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  if deterministic and seed is None:
    raise ValueError("a deterministic pipeline needs a fixed seed (seed=None given)")
  dataset = _as_dataset(source, split)
  if input_context is not None and input_context.num_input_pipelines > 1:
    dataset = dataset.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
  dataset = dataset.map(_keep_train_keys)  # drop roi / iou / filename before buffering
  # Ignored RoIs (label -1: IoU between the background and face thresholds) never reach
  # training: neither class below selects them.
  if config.face_fraction is None:
    dataset = _shuffle_repeat(_select(dataset, lambda label: label >= 0), config, seed, 0)
  else:
    faces = _select(dataset, lambda label: label >= 1)
    background = _select(dataset, lambda label: label == 0)
    # Each class is shuffled and repeated on its own, so the mix is set by the sampling
    # weights alone, whatever the class ratio on disk.
    dataset = tf.data.Dataset.sample_from_datasets(
        [_shuffle_repeat(faces, config, seed, 1), _shuffle_repeat(background, config, seed, 2)],
        weights=[config.face_fraction, 1.0 - config.face_fraction],
        seed=_seed(seed, 3), stop_on_empty_dataset=True)

  dataset = dataset.map(_train_example_fn(crop), num_parallel_calls=config.num_parallel_calls)
  dataset = dataset.batch(batch_size, drop_remainder=config.drop_remainder)
  dataset = dataset.prefetch(config.prefetch)
  options = tf.data.Options()
  options.deterministic = deterministic
  options.experimental_optimization.map_parallelization = True
  return dataset.with_options(options)
