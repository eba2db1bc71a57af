"""The one progress facility: a live Keras progress bar (rate, ETA) per long job on a terminal;
without a terminal (logs, CI) one plain line every tenth of the job."""
import sys
import time

import keras


class Progress:
  """``update(done)`` after each item of a job of ``total`` items (``initial`` already done)."""

  def __init__(self, total: int, what: str = "image", initial: int = 0, every: float = 0.1,
               stream=None):
    self.total, self.what, self.initial = max(int(total), 0), what, int(initial)
    self.stream = stream or sys.stdout
    self.live = self.stream.isatty()
    self.bar = keras.utils.Progbar(self.total, unit_name=what) if self.live else None
    self.step = max(1, int(self.total * every))
    self.start = time.time()
    self.done = self.initial
    if self.bar is not None and self.initial:
      self.bar.update(self.initial)

  def update(self, done: int, values=None):
    """``values``: optional [(name, number)] shown beside the bar (e.g. the latest losses)."""
    previous, self.done = self.done, int(done)
    if self.bar is not None:
      self.bar.update(self.done, values=values)
      return
    if self.done != self.total and self.done // self.step == previous // self.step:
      return
    elapsed = time.time() - self.start
    rate = (self.done - self.initial) / elapsed if elapsed > 0 else 0.0
    eta = (self.total - self.done) / rate if rate > 0 else 0.0
    shown = "".join(f" {name}={float(value):.4g}" for name, value in values or ())
    print(f"  {self.done}/{self.total} {self.what}s  {rate:.1f} {self.what}s/s  "
          f"elapsed {elapsed:.0f}s  eta {eta:.0f}s{shown}", file=self.stream, flush=True)


class ProgressCallback(keras.callbacks.Callback):
  """A Keras callback driving one Progress over a whole training phase (across fit epochs)."""

  def __init__(self, total: int, initial: int, what: str = "step", shown=()):
    super().__init__()
    self.progress = Progress(total, what, initial=initial)
    self.done, self.shown = initial, tuple(shown)

  def on_train_batch_end(self, batch, logs=None):
    self.done += 1
    logs = logs or {}
    self.progress.update(self.done, [(k, logs[k]) for k in self.shown if k in logs])
