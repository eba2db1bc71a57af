"""Evaluation: the official WIDER FACE protocol (wider), FDDB discrete ROC (fddb), COCO AP (coco)."""
