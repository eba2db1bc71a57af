"""TFDS folder-style builder `coco_rois` (see coco_rois_dataset_builder.py)."""
