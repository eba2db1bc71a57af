"""Progress output for long loops: a Keras progress bar on a terminal, periodic log lines in logs."""
import sys
import time

import keras
from absl import logging


class Progress:
  """``update(done)`` after each item; ``every`` = fraction of the total between log lines."""

  def __init__(self, total, what="image", every=0.1):
    self.total, self.what = total, what
    self.bar = keras.utils.Progbar(total, unit_name=what) if sys.stdout.isatty() else None
    self.step = max(1, int(total * every))
    self.start = time.time()

  def update(self, done):
    if self.bar is not None:
      self.bar.update(done)
    elif done == self.total or done % self.step == 0:
      elapsed = time.time() - self.start
      logging.info("%d/%d %ss (%.1f s, %.3f s/%s)", done, self.total, self.what, elapsed,
                   elapsed / max(done, 1), self.what)
