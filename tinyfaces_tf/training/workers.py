"""Who writes what when several workers train one run (tf.distribute.MultiWorkerMirroredStrategy).

The chief (task "chief", or worker 0 when the cluster has no chief) writes the run directory:
config.json, checkpoints, TensorBoard, train_result.json and the export. Every other worker makes
the same checkpoint and export calls (they run collective ops, so all workers must take part) into
a temporary directory of its own that is removed afterwards, as the tf.distribute multi-worker
guide prescribes. Every worker restores from the chief's checkpoints, so the run directory must be
on storage all workers can read (GCS, NFS; the same disk when they share a machine).
"""
import contextlib
import os
import shutil
import tempfile
from typing import Iterator, Optional, Tuple

import tensorflow as tf


def task_of(strategy: tf.distribute.Strategy) -> Tuple[Optional[str], Optional[int]]:
  """(task type, task id) of this process in the strategy's cluster; (None, None) outside one."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.cluster_spec().as_dict():
    return None, None
  return resolver.task_type, resolver.task_id


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """True for the one process that writes the run's files (and for every single-process run)."""
  task_type, task_id = task_of(strategy)
  if task_type is None or task_type == "chief":
    return True
  has_chief = "chief" in strategy.cluster_resolver.cluster_spec().as_dict()
  return task_type == "worker" and task_id == 0 and not has_chief


@contextlib.contextmanager
def write_dir(path: str, strategy: tf.distribute.Strategy) -> Iterator[str]:
  """``path`` on the chief; elsewhere a fresh temporary directory, removed on exit."""
  if is_chief(strategy):
    yield path
    return
  task_type, task_id = task_of(strategy)
  temp = tempfile.mkdtemp(prefix=f"tinyfaces-{task_type}{task_id}-")
  try:
    yield os.path.join(temp, os.path.basename(os.path.normpath(path)))
  finally:
    shutil.rmtree(temp, ignore_errors=True)
