"""Training: the loop (loop.py) and synthetic batches for smoke runs (synthetic.py)."""
