"""Detection: the graph detector (detector.py) and split-level jobs writing files (jobs.py)."""
