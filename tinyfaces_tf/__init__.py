"""tinyfaces_tf: GAN-based tiny-face detection (Bai et al. CVPR 2018, journal extension, MTGAN).

Conventions used throughout the package:
  * boxes are float32 pixel ``x1, y1, x2, y2`` (continuous coordinates, x2 = x1 + w) unless a
    function says otherwise; WIDER files use ``x, y, w, h``.
  * images fed to the models are float32 in [-1, 1] (``imaging.to_model_range``); the generator's
    outputs live on the same scale.
  * patch sizes and the context factor are the experiment config's ``crop`` section
    (``roi_crop.CropConfig``: 64x64 HR, 16x16 LR by bicubic x4 down-sampling, by default).

Layers and modules: docs/ARCHITECTURE.md.
"""

__version__ = "0.1.0"
