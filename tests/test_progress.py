"""Progress lines in logs (not a terminal) are well-formed and come at the stated interval."""
from tinyfaces_tf import progress


def test_log_lines_format_and_interval(monkeypatch):
  lines = []
  monkeypatch.setattr(progress.logging, "info", lambda fmt, *args: lines.append(fmt % args))
  p = progress.Progress(20, what="image", every=0.25)
  p.bar = None  # as under a log file / CI, whatever pytest's stdout is
  for done in range(1, 21):
    p.update(done)
  assert [line.split()[0] for line in lines] == ["5/20", "10/20", "15/20", "20/20"]
  assert all(line.split()[1] == "images" and line.endswith("s/image)") for line in lines)
