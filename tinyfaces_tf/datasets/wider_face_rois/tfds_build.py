"""`tfds build` without the CLI's optional dependencies.

tensorflow-datasets 4.9.10's `tfds` entry point imports every sub-command at start-up, and its
`convert_format` and `build_croissant` commands import `apache_beam` and `mlcroissant` at module
level, so `tfds build ...` dies with ModuleNotFoundError where those are not installed (neither is
needed to build a generator-based dataset). This runs TFDS's own `build` command
(`tensorflow_datasets.scripts.cli.build.Args`) with the same flags:

  python -m tinyfaces_tf.datasets.wider_face_rois.tfds_build \
      tinyfaces_tf/datasets/wider_face_rois --manual_dir=WIDER_ROOT --config=x2.0 \
      --data_dir=DATA_DIR

With apache-beam and mlcroissant installed, `tfds build` with the same arguments does the same.
"""
from absl import app

from tensorflow_datasets.core import visibility
from tensorflow_datasets.scripts.cli import build
from tensorflow_datasets.scripts.cli import cli_utils


def main(args: build.Args) -> None:
  # As `tfds` does: datasets outside the TFDS package (ours) are visible from the CLI.
  visibility.set_availables([visibility.DatasetType.TFDS_PUBLIC,
                             visibility.DatasetType.COMMUNITY_PUBLIC])
  args.execute()


if __name__ == "__main__":
  app.run(main, flags_parser=cli_utils.make_flags_parser(build.Args, description=__doc__))
