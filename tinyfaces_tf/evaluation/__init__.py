"""Evaluation: the official WIDER FACE protocol (wider_protocol), report files (report), FDDB discrete ROC (fddb), COCO AP (coco)."""
