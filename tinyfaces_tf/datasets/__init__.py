"""TFDS builders of the package (one folder per dataset, TFDS layout)."""
