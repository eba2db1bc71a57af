"""The progress facility: without a terminal, one line per tenth of the job with rate and ETA."""
import io
import re

from tinyfaces_tf import progress


def test_plain_lines_every_tenth_with_rate_and_eta():
  stream = io.StringIO()  # not a terminal
  bar = progress.Progress(100, "image", stream=stream)
  assert bar.bar is None
  for done in range(1, 101):
    bar.update(done, values=[("loss", 0.5)])
  lines = stream.getvalue().splitlines()
  assert len(lines) == 10
  assert all(re.fullmatch(r"  \d+/100 images  [\d.]+ images/s  elapsed \d+s  eta \d+s loss=0\.5",
                          line) for line in lines), lines
  assert lines[-1].startswith("  100/100 images")


def test_a_resumed_job_counts_from_where_it_was():
  stream = io.StringIO()
  bar = progress.Progress(10, "step", initial=6, stream=stream)
  for done in range(7, 11):
    bar.update(done)
  lines = stream.getvalue().splitlines()
  assert [line.split()[0] for line in lines] == ["7/10", "8/10", "9/10", "10/10"]
