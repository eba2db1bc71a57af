"""TFDS folder-style builder `wider_face_rois` (see wider_face_rois_dataset_builder.py)."""
