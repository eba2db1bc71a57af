"""tf.data training pipeline (data/pipeline.py) on synthetic and dummy-data examples."""
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from tinyfaces_tf.data import pipeline

REPO = pathlib.Path(__file__).resolve().parents[1]


def _synthetic(n, face_every=5, ignored_every=0, encode=False):
  """n examples; example i has every lr/hr pixel = i % 256 and box_target = (i, -i, 2i, 0.5).

  Labels: 1 for i % face_every == 0, -1 for i % ignored_every == 1 (when set), else 0.
  Ignored examples carry box_target[3] = 99 so a test can spot them.
  """
  idx = np.arange(n)
  values = (idx % 256).astype(np.uint8)
  lr = np.broadcast_to(values[:, None, None, None], (n, 16, 16, 3)).copy()
  hr = np.broadcast_to(values[:, None, None, None], (n, 64, 64, 3)).copy()
  labels = np.where(idx % face_every == 0, 1, 0).astype(np.int64)
  targets = np.stack([idx, -idx, 2 * idx, np.full(n, 0.5)], axis=1).astype(np.float32)
  if ignored_every:
    ignored = idx % ignored_every == 1
    labels[ignored] = -1
    targets[ignored, 3] = 99.0
  features = {"lr": lr, "hr": hr, "label": labels, "box_target": targets,
              "roi": np.zeros((n, 4), np.float32), "iou": np.zeros(n, np.float32),
              "image/filename": np.array([f"e/{i}.jpg" for i in idx])}
  if encode:
    features["lr"] = np.array([tf.io.encode_png(x).numpy() for x in lr])
    features["hr"] = np.array([tf.io.encode_png(x).numpy() for x in hr])
  return tf.data.Dataset.from_tensor_slices(features)


def cfg(batch_size=32, seed=0, deterministic=False, split="train", **pipeline_fields):
  """A PipelineConfig plus the run-level arguments make_training_dataset takes beside it."""
  return pipeline.PipelineConfig(**pipeline_fields), dict(
      batch_size=batch_size, seed=seed, deterministic=deterministic, split=split)


def make(source, config):
  pipeline_config, kwargs = config
  return pipeline.make_training_dataset(source, pipeline_config, **kwargs)


def make_distributed(strategy, source, config):
  """As the training loop reads a pipeline under a strategy (Task's make_dataset contract)."""
  from tinyfaces_tf.training import loop  # pylint: disable=g-import-not-at-top
  pipeline_config, kwargs = config
  batch_size, seed = kwargs.pop("batch_size"), kwargs.pop("seed")

  def make_dataset(seed, input_context):
    per_replica = input_context.get_per_replica_batch_size(batch_size)
    return pipeline.make_training_dataset(source, pipeline_config, per_replica, seed=seed,
                                          input_context=input_context, **kwargs)

  return loop.distributed_input(strategy, make_dataset, seed, 0)


def _batches(dataset, count):
  return list(dataset.take(count).as_numpy_iterator())


@pytest.mark.parametrize("encode", [False, True])
def test_batch_dict_dtypes_shapes_and_values(encode):
  config = cfg(batch_size=8, face_fraction=None, shuffle_buffer=1,
                                   repeat=False, deterministic=True)
  batches = _batches(make(_synthetic(20, encode=encode), config), 10)
  assert len(batches) == 2  # 20 examples, drop_remainder -> 2 full batches of 8
  batch = batches[0]
  assert set(batch) == {"lr", "hr", "label", "box_target"}
  assert batch["lr"].dtype == np.float32 and batch["lr"].shape == (8, 16, 16, 3)
  assert batch["hr"].dtype == np.float32 and batch["hr"].shape == (8, 64, 64, 3)
  assert batch["label"].dtype == np.int32 and batch["label"].shape == (8,)
  assert batch["box_target"].dtype == np.float32 and batch["box_target"].shape == (8, 4)
  # No shuffling: example i is pixel value i; [-1, 1] scaling is v / 127.5 - 1 (0 -> -1).
  ids = batch["box_target"][:, 0].astype(int)
  np.testing.assert_array_equal(ids, np.arange(8))
  np.testing.assert_allclose(batch["lr"][:, 0, 0, 0], ids / 127.5 - 1.0, atol=1e-6)
  np.testing.assert_allclose(batch["hr"][:, 63, 63, 2], ids / 127.5 - 1.0, atol=1e-6)
  np.testing.assert_array_equal(batch["label"], (ids % 5 == 0).astype(np.int32))


def test_static_batch_shapes():
  config = cfg(batch_size=4)
  spec = make(_synthetic(30), config).element_spec
  assert spec["lr"].shape.as_list() == [4, 16, 16, 3]
  assert spec["label"].shape.as_list() == [4]


def test_pixel_range_extremes():
  # 255 -> +1, 0 -> -1 (hand-worked: 255 / 127.5 - 1 = 1).
  config = cfg(batch_size=256, face_fraction=None, shuffle_buffer=1,
                                   repeat=False)
  batch = _batches(make(_synthetic(256), config), 1)[0]
  assert batch["lr"].min() == -1.0 and batch["lr"].max() == 1.0


def test_ignored_rois_never_reach_training():
  config = cfg(batch_size=16, face_fraction=0.4, shuffle_buffer=64, seed=3)
  dataset = make(_synthetic(300, ignored_every=3), config)
  for batch in _batches(dataset, 40):
    assert (batch["label"] >= 0).all()
    assert (batch["box_target"][:, 3] != 99.0).all()
    # Example ids that were ignored (i % 3 == 1) never show up either.
    assert (batch["box_target"][:, 0].astype(int) % 3 != 1).all()


@pytest.mark.parametrize("fraction", [0.4, 0.75])
def test_face_fraction_is_kept(fraction):
  # The source holds 20 % faces; the pipeline must resample to `fraction`.
  config = cfg(batch_size=32, face_fraction=fraction, shuffle_buffer=128,
                                   seed=7)
  labels = np.concatenate([b["label"] for b in
                           _batches(make(_synthetic(500), config), 60)])
  assert labels.size == 60 * 32
  # Binomial std for n = 1920 is <= 0.0115; 0.04 is ~3.5 sigma.
  assert abs(labels.mean() - fraction) < 0.04


def test_no_face_fraction_keeps_natural_mix():
  config = cfg(batch_size=50, face_fraction=None, shuffle_buffer=500,
                                   repeat=False, seed=1)
  labels = np.concatenate([b["label"] for b in
                           _batches(make(_synthetic(500), config), 20)])
  assert labels.size == 500 and labels.sum() == 100  # every example once, 1 in 5 is a face


@pytest.mark.parametrize("face_fraction", [None, 1.0, 0.0])
def test_class_selection_keeps_source_order_across_blocks(face_fraction):
  # Without shuffling, each class is its source examples in order: a NumPy reference over more
  # examples than one selection block holds (ids in box_target[:, 0]; ignored ones every 7th).
  n = 2 * pipeline.SELECT_BLOCK + 37
  ids = np.arange(n)
  labels = np.where(ids % 5 == 0, 1, 0)
  labels[ids % 7 == 1] = -1
  wanted = {None: labels >= 0, 1.0: labels == 1, 0.0: labels == 0}[face_fraction]
  config = cfg(batch_size=1, face_fraction=face_fraction, shuffle_buffer=0, repeat=False,
               deterministic=True)
  seen = np.concatenate([b["box_target"][:, 0] for b in
                         make(_synthetic(n, ignored_every=7), config).as_numpy_iterator()])
  np.testing.assert_array_equal(seen, ids[wanted])


def test_deterministic_mode_repeats_exactly():
  def run(seed):
    config = cfg(batch_size=16, face_fraction=0.4, shuffle_buffer=100,
                                     seed=seed, deterministic=True, num_parallel_calls=4)
    return np.concatenate([b["box_target"][:, 0] for b in
                           _batches(make(_synthetic(200), config), 12)])
  first, second, other = run(11), run(11), run(12)
  np.testing.assert_array_equal(first, second)
  assert not np.array_equal(first, other)  # the seed matters: the order is really shuffled


def test_finite_epoch_without_repeat():
  # 100 examples, 20 faces; face_fraction 0.5 with repeat=False stops when faces run out, so
  # at most 20 faces + about as many backgrounds are seen, never more than 100.
  config = cfg(batch_size=4, face_fraction=0.5, shuffle_buffer=10,
                                   repeat=False, seed=0)
  labels = np.concatenate([b["label"] for b in
                           make(_synthetic(100), config)
                           .as_numpy_iterator()])
  assert labels.sum() <= 20 and 20 <= labels.size < 100


def test_callable_source_and_bad_inputs():
  config = cfg(batch_size=2, face_fraction=None, repeat=False)
  assert len(_batches(make(lambda: _synthetic(5), config), 5)) == 2
  with pytest.raises(ValueError, match="face_fraction"):
    pipeline.PipelineConfig(face_fraction=1.5)
  with pytest.raises(ValueError, match="seed"):
    make(_synthetic(5), cfg(deterministic=True, seed=None))
  with pytest.raises(TypeError, match="source"):
    make(42, config)
  missing = tf.data.Dataset.from_tensor_slices({"lr": np.zeros((2, 16, 16, 3), np.uint8)})
  with pytest.raises(KeyError, match="hr"):
    make(missing, config)


def test_mirrored_strategy_one_device():
  strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
  config = cfg(batch_size=8, seed=0)
  dist = make_distributed(strategy, _synthetic(64), config)
  batch = next(iter(dist))
  assert batch["lr"].shape == (8, 16, 16, 3)  # one replica: per-replica batch = global
  assert batch["label"].dtype == tf.int32


_TWO_REPLICAS = textwrap.dedent("""
    import numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from tinyfaces_tf.data import pipeline
    from tinyfaces_tf.training import loop
    n = 64
    ds = tf.data.Dataset.from_tensor_slices({
        "lr": np.zeros((n, 16, 16, 3), np.uint8), "hr": np.zeros((n, 64, 64, 3), np.uint8),
        "label": (np.arange(n) % 2).astype(np.int64),
        "box_target": np.zeros((n, 4), np.float32)})
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    def make_dataset(global_batch):
      return lambda seed, ctx: pipeline.make_training_dataset(
          ds, pipeline.PipelineConfig(), ctx.get_per_replica_batch_size(global_batch), seed=seed,
          input_context=ctx)
    try:
      loop.distributed_input(strategy, make_dataset(7), 0, 0)
      raise SystemExit("no error for batch 7 over 2 replicas")
    except ValueError as e:
      assert "divisible" in str(e)
    dist = loop.distributed_input(strategy, make_dataset(8), 0, 0)
    batch = next(iter(dist))
    parts = strategy.experimental_local_results(batch["lr"])
    labels = strategy.experimental_local_results(batch["label"])
    print("SHAPES", [tuple(p.shape) for p in parts], [str(l.dtype.name) for l in labels])
    @tf.function
    def step(b):
      return strategy.run(lambda x: tf.reduce_sum(tf.cast(x["label"], tf.float32) * 0 + 1),
                          args=(b,))
    total = strategy.reduce(tf.distribute.ReduceOp.SUM, step(batch), axis=None)
    print("TOTAL", int(total.numpy()))
""")


def test_mirrored_strategy_two_logical_cpus():
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
  result = subprocess.run([sys.executable, "-c", _TWO_REPLICAS], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=120)
  assert result.returncode == 0, result.stderr[-3000:]
  # Global batch 8 over 2 replicas -> 4 per replica; one step sees 8 examples in all.
  assert "SHAPES [(4, 16, 16, 3), (4, 16, 16, 3)] ['int32', 'int32']" in result.stdout
  assert "TOTAL 8" in result.stdout


def test_real_builder_on_dummy_data(tmp_path):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from tinyfaces_tf.datasets.wider_face_rois import wider_face_rois_dataset_builder as builder_lib
  data_dir = tmp_path / "tfds"
  builder = builder_lib.Builder(config="x2.0", data_dir=str(data_dir))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(builder_lib.Builder.code_path.parent / "dummy_data")))

  count = pipeline.count_examples(data_dir, "validation", "x2.0")
  assert count == builder.info.splits["validation"].num_examples > 0
  with pytest.raises(FileNotFoundError, match="x3.0"):
    pipeline.load_split(data_dir, "validation", "x3.0")

  # TFDS's own decoding is the reference for the pipeline's parallel PNG decode.
  reference = list(pipeline.load_split(data_dir, "validation", "x2.0", decode=True).as_numpy_iterator())
  kept = [ex for ex in reference if ex["label"] >= 0]
  config = cfg(batch_size=1, face_fraction=None, shuffle_buffer=1,
                                   repeat=False, deterministic=True)
  got = list(make(pipeline.load_split(data_dir, "validation", "x2.0"), config)
             .as_numpy_iterator())
  assert len(got) == len(kept)
  for ex, batch in zip(kept, got):
    np.testing.assert_allclose(batch["lr"][0], ex["lr"] / 127.5 - 1.0, atol=1e-6)
    np.testing.assert_allclose(batch["hr"][0], ex["hr"] / 127.5 - 1.0, atol=1e-6)
    assert batch["label"][0] == ex["label"]
    np.testing.assert_array_equal(batch["box_target"][0], ex["box_target"])

  # The training path through a builder object and the configured mix.
  builder_batches = make(
      builder, cfg(batch_size=4, face_fraction=0.5, seed=0))
  batch = next(iter(builder_batches))
  assert batch["hr"].shape == (4, 64, 64, 3) and batch["label"].dtype == tf.int32
