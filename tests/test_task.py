"""The task layer end to end on the builder's dummy data: a config's crop and sampler decide the
RoIs it builds (under their own TFDS config name), the pipeline's patch shapes, the models' input
sizes and the exported detector, with nothing else to keep in step."""
import numpy as np
import tensorflow as tf

from tinyfaces_tf import config as config_lib
from tinyfaces_tf import export
from tinyfaces_tf import task as task_lib
from tinyfaces_tf.datasets.wider_face_rois import wider_face_rois_dataset_builder as builder_lib

DUMMY = str(builder_lib.Builder.code_path.parent / "dummy_data")


def test_predefined_crop_keeps_its_name_and_a_custom_one_gets_its_own(tmp_path):
  journal = task_lib.Task(config_lib.get_preset("journal"), DUMMY)
  assert journal.rois_config_name == "x2.0"
  custom = task_lib.Task(config_lib.replace(config_lib.get_preset("journal"),
                                            sampler={"jitter_per_face": 2}), DUMMY)
  other = task_lib.Task(config_lib.replace(config_lib.get_preset("journal"),
                                           sampler={"jitter_per_face": 3}), DUMMY)
  assert custom.rois_config_name.startswith("x2.0-")
  assert len({journal.rois_config_name, custom.rois_config_name, other.rois_config_name}) == 3


def test_small_patches_flow_from_the_config_to_the_export(tmp_path, restore_policy):
  cfg = config_lib.replace(
      config_lib.get_preset("demo"), crop={"hr_size": 32, "context": 1.5},
      sampler={"jitter_per_face": 2},
      train={"batch_size": 4, "steps": 2, "pretrain_steps": 1, "checkpoint_every": 2,
             "precision": "float32", "deterministic": True})
  task = task_lib.Task(cfg, DUMMY)
  counts = task.build_rois(str(tmp_path / "tfds"))
  # Worked out from the dummy data as in the builder test, with 2 jittered positives per valid
  # face: train 2 faces -> 4 + 6, 1 valid face -> 2 + 3, no face -> 0 + 2 = 17.
  assert counts["train"] == 17
  assert (tmp_path / "tfds" / "wider_face_rois" / task.rois_config_name).is_dir()
  make_dataset, steps_per_epoch = task.build_train_dataset(str(tmp_path / "tfds"))
  assert steps_per_epoch == 17 // 4
  batch = next(iter(make_dataset(0)))
  assert batch["hr"].shape == (4, 32, 32, 3) and batch["lr"].shape == (4, 8, 8, 3)
  result, gan = task.train(make_dataset, str(tmp_path / "run"), steps_per_epoch)
  assert result.steps == 2
  path = task.export(gan.generator, gan.discriminator, str(tmp_path / "export"))
  assert export.load_config(path) == cfg
  loaded = tf.saved_model.load(path)
  served = loaded.signatures["score_rois"](lr=tf.zeros([3, 8, 8, 3]))
  assert served["sr"].shape == (3, 32, 32, 3)
  image = np.zeros((60, 80, 3), np.uint8)
  out = loaded.detect(image=tf.constant(image), boxes=tf.constant([[10.0, 10.0, 30.0, 40.0]]),
                      scores=tf.constant([0.9]))
  assert out["boxes"].shape == (1, 4)
  # The run directory alone rebuilds the same models, weights included.
  restored = task_lib.Task.from_run_dir(str(tmp_path / "run"))
  assert restored.config == cfg
  generator, _ = restored.restore_models(str(tmp_path / "run"))
  for a, b in zip(generator.weights, gan.generator.weights):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_workers_read_disjoint_shards_that_cover_an_epoch(tmp_path):
  """What each worker's input pipeline gets under tf.distribute: its own shard at the
  per-replica batch, no example seen by both workers, every example by one."""
  cfg = config_lib.replace(config_lib.get_preset("demo"), crop={"hr_size": 32},
                           sampler={"jitter_per_face": 2}, train={"batch_size": 4},
                           pipeline={"repeat": False, "face_fraction": None,
                                     "drop_remainder": False})
  task = task_lib.Task(cfg, DUMMY)
  task.build_rois(str(tmp_path / "tfds"))
  make_dataset, _ = task.build_train_dataset(str(tmp_path / "tfds"))

  def keys(dataset):
    found = []
    for batch in dataset:
      for hr, target in zip(batch["hr"].numpy(), batch["box_target"].numpy()):
        found.append(hr.tobytes() + target.tobytes())
    return found

  everything = keys(make_dataset(0))
  assert len(set(everything)) == len(everything) == 17  # as worked out in the test above
  seen = []
  for worker in range(2):
    context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=worker,
                                         num_replicas_in_sync=2)
    batches = list(make_dataset(0, context))
    assert max(len(b["label"]) for b in batches) == 2  # per-replica batch = 4 / 2 replicas
    seen.append(keys(batches))
  assert not set(seen[0]) & set(seen[1])
  assert sorted(seen[0] + seen[1]) == sorted(everything)


def test_beam_runs_locally_without_fetching_prism(caplog):
  import logging  # pylint: disable=g-import-not-at-top
  import apache_beam as beam  # pylint: disable=g-import-not-at-top
  from apache_beam.testing import util as beam_util  # pylint: disable=g-import-not-at-top
  options = task_lib.beam_pipeline_options_of(
      "direct_num_workers=2,direct_running_mode=multi_threading").get_all_options()
  assert options["runner"] == task_lib.LOCAL_BEAM_RUNNER and options["direct_num_workers"] == 2
  named = task_lib.beam_pipeline_options_of("runner=DataflowRunner").get_all_options()
  assert named["runner"] == "DataflowRunner"
  # Beam's default DirectRunner logs that it tries Prism (a binary it downloads); ours does not.
  caplog.set_level(logging.INFO)
  with beam.Pipeline(options=task_lib.beam_pipeline_options_of(None)) as pipeline:
    squares = pipeline | beam.Create([1, 2, 3]) | beam.Map(lambda v: v * v)
    beam_util.assert_that(squares, beam_util.equal_to([1, 4, 9]))
  assert "prism" not in caplog.text.lower()
