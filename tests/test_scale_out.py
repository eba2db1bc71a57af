"""Proposals as a sharded, resumable job, and the RoI build reading them (or running a proposer
itself) through the `tinyfaces-data` command line."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tinyfaces_tf.cli import data as data_cli
from tinyfaces_tf.data import result_files
from tinyfaces_tf.datasets.wider_face_rois import wider_face_rois_dataset_builder as builder_lib
from tinyfaces_tf.detection import jobs

DUMMY = builder_lib.Builder.code_path.parent / "dummy_data"
TRAIN = ["0--Parade/0_Parade_marchingband_1_5.jpg", "0--Parade/0_Parade_Parade_0_12.jpg",
         "1--Handshaking/1_Handshaking_Handshaking_1_94.jpg"]


@pytest.fixture
def wider(tmp_path):
  root = tmp_path / "wider"
  shutil.copytree(DUMMY, root)
  return root


def _files(folder):
  return sorted(os.path.relpath(os.path.join(d, f), folder)
                for d, _, files in os.walk(folder) for f in files)


def test_shards_partition_the_names():
  names = [f"e/{i}.jpg" for i in range(10)]
  shards = [jobs.shard(names, i, 3) for i in range(3)]
  assert sorted(sum(shards, [])) == sorted(names)
  assert [len(s) for s in shards] == [4, 3, 3]
  with pytest.raises(ValueError, match="shard 3/3"):
    jobs.shard(names, 3, 3)


def test_sharded_proposals_equal_one_job_and_a_rerun_only_resumes(wider, tmp_path):
  whole = tmp_path / "whole"
  data_cli.proposals(str(wider), "train", "windows", (0, 1), str(whole))
  sharded = wider / "proposals" / "train"
  summaries = [data_cli.proposals(str(wider), "train", "windows", (i, 2), str(sharded))
               for i in range(2)]
  assert sorted(s.images for s in summaries) == [1, 2]
  assert _files(sharded) == _files(whole) == sorted(
      name.replace(".jpg", ".txt") for name in TRAIN)
  for name in _files(whole):
    np.testing.assert_array_equal(result_files.read_result_file(whole / name)[0],
                                  result_files.read_result_file(sharded / name)[0])
  # A killed job leaves whole files only (atomic writes); run again, it does the rest.
  os.remove(sharded / TRAIN[0].replace(".jpg", ".txt"))
  before = {name: os.stat(sharded / name).st_mtime_ns for name in _files(sharded)}
  again = data_cli.proposals(str(wider), "train", "windows", (0, 1), str(sharded))
  assert (again.images, again.already_done) == (1, 2)
  assert all(os.stat(sharded / name).st_mtime_ns == t for name, t in before.items())
  assert _files(sharded) == _files(whole)


def test_roi_build_reads_the_proposal_files_or_runs_the_proposer(wider, tmp_path):
  """The same windows proposals, written by the proposal job or computed inside the build, give
  the same RoIs; without any, the train split has only jitter + random windows (10 RoIs)."""
  from tinyfaces_tf import config as config_lib  # pylint: disable=g-import-not-at-top
  from tinyfaces_tf import task as task_lib  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  cfg = config_lib.replace(config_lib.get_preset("demo"), crop={"hr_size": 32})

  def build(root, name, proposer=None):
    task = task_lib.Task(cfg, str(root))
    counts = task.build_rois(str(tmp_path / name), proposer=proposer)
    builder = task.adapter.roi_builder(cfg.crop, cfg.sampler, str(tmp_path / name))
    return counts, list(tfds.as_numpy(builder.as_dataset("train", shuffle_files=False)))

  plain_counts, _ = build(wider, "plain")
  assert plain_counts["train"] == 10  # as worked out in the builder test
  computed_counts, computed = build(wider, "computed", proposer="windows")
  data_cli.proposals(str(wider), "train", "windows", (0, 1),
                     str(wider / "proposals" / "train"))
  read_counts, read = build(wider, "read")
  assert computed_counts == read_counts and read_counts["train"] > plain_counts["train"]
  for a, b in zip(computed, read):
    np.testing.assert_array_equal(a["roi"], b["roi"])
    np.testing.assert_array_equal(a["hr"], b["hr"])


def test_command_line_errors_name_the_flag(wider):
  done = subprocess.run(
      [sys.executable, "-m", "tinyfaces_tf.cli.data", "proposals", f"--wider_dir={wider}",
       "--proposer=windows", "--shard=2/2"], capture_output=True, text=True, timeout=120)
  assert done.returncode == 2
  assert done.stderr.strip().splitlines()[-1].endswith(
      "error: --shard=2/2: expected i/n with 0 <= i < n, e.g. 0/4 (see --help)")
