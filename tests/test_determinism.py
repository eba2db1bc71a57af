"""Deterministic training (`train.deterministic`, on in experiments/demo_scale.cfg): the demo-scale
configuration trained with the same seed on real RoIs in two processes, one after the other, with
the default multi-threaded kernels, gives the same weights, the same detections and so the same AP
to the last digit. (Before Grappler's arithmetic optimizer was turned off with it, about one
process in seven built a differently rounding graph; and past about 90 GAN steps each process
drifted until the step function was re-traced every 64 calls: BUILD_NOTES.md, "Noise floor".)"""
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPERIMENTS = os.path.join(REPO, "experiments")
ROW = [os.path.join(EXPERIMENTS, "table3", "context_x2.0.cfg"),
       os.path.join(EXPERIMENTS, "demo_scale.cfg")]
SHORT = ["--config.train.steps=8", "--config.train.pretrain_steps=2",
         "--config.train.batch_size=8", "--config.train.checkpoint_every=4"]


def _train_once(tmp, name):
  """Run as a script: enables determinism first (before any TF op), then makes the demo data,
  trains, exports, detects and evaluates; writes what the run produced to tmp/<name>.json."""
  # pylint: disable=g-import-not-at-top
  from tinyfaces_tf.training import loop
  loop.enable_determinism()
  import numpy as np
  from absl import flags
  from tinyfaces_tf import export
  from tinyfaces_tf import proposals
  from tinyfaces_tf import task as task_lib
  from tinyfaces_tf.cli import config_flags
  from tinyfaces_tf.data import demo
  from tinyfaces_tf.data import wider_face
  from tinyfaces_tf.detection import jobs
  from tinyfaces_tf.evaluation import report
  flag_values = flags.FlagValues()
  config_flags.define_config_flags(flag_values=flag_values)
  flag_values(["test", *(f"--flagfile={path}" for path in ROW), *SHORT])
  cfg = config_flags.config_from_flags(flag_values)
  assert cfg.train.deterministic
  data, tfds_dir = os.path.join(tmp, "demo"), os.path.join(tmp, "tfds")
  demo.make_demo_dataset(data, train_images=6, val_images=3, test_images=0, seed=4)
  dataset = wider_face.WiderFace(data)
  out = os.path.join(tmp, name)
  task = task_lib.Task(cfg, data)
  task.build_rois(tfds_dir)
  make_dataset, steps_per_epoch = task.build_train_dataset(tfds_dir)
  _, gan = task.train(make_dataset, out, steps_per_epoch)
  task.export(gan.generator, gan.discriminator, os.path.join(out, "export"))
  jobs.detect_split(export.SavedModelDetector(os.path.join(out, "export")),
                    dataset.images_dir("val"), dataset.names("val"),
                    proposals.make_proposer("windows", max_rois=100),  # 600 is 6x slower
                    os.path.join(out, "results"))
  aps = report.evaluate_dirs({"ours": os.path.join(out, "results")},
                             dataset.ground_truth_dir, os.path.join(out, "eval"))
  weights = np.concatenate([v.numpy().ravel() for v in gan.generator.variables
                            + gan.discriminator.variables])
  results = {}
  for root, _, files in os.walk(os.path.join(out, "results")):
    for f in sorted(files):
      with open(os.path.join(root, f)) as text:
        results[f] = text.read()
  run = {"aps": aps, "results": results, "weights_sum": float(np.abs(weights).sum()),
         "weights": weights.tolist()}
  with open(os.path.join(tmp, f"{name}.json"), "w") as f:
    json.dump(run, f)


def test_same_config_and_seed_give_the_same_ap_in_two_processes(tmp_path):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="",
             PYTHONPATH=os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p))
  for name in ("first", "second"):  # each in a fresh process with its own data and run dirs
    run_dir = tmp_path / name
    run_dir.mkdir()
    done = subprocess.run([sys.executable, __file__, str(run_dir), name], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
  first = json.loads((tmp_path / "first" / "first.json").read_text())
  second = json.loads((tmp_path / "second" / "second.json").read_text())
  assert first["aps"] == second["aps"]  # to the last digit
  assert first["results"] == second["results"] and len(first["results"]) == 3  # every score
  assert first["weights"] == second["weights"] and first["weights_sum"] > 0  # bit for bit


if __name__ == "__main__":
  _train_once(sys.argv[1], sys.argv[2])
