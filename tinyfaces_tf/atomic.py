"""Files written so that a kill at any instant leaves the previous file or the new one, never half
of one: written to a temporary sibling, then renamed into place (rename is atomic on POSIX)."""
import json
import os


def write_text(path, text: str) -> str:
  path = os.fspath(path)
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  tmp = f"{path}.tmp"
  with open(tmp, "w", encoding="utf-8", newline="\n") as f:
    f.write(text)
  os.replace(tmp, path)
  return path


def write_json(path, obj) -> str:
  return write_text(path, json.dumps(obj, indent=2) + "\n")
