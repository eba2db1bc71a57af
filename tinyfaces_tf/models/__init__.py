"""Generators, discriminators and the multi-task GAN (journal Table 1, MTGAN Table 1)."""
from tinyfaces_tf.models.discriminator import BACKBONES
from tinyfaces_tf.models.discriminator import DiscriminatorConfig
from tinyfaces_tf.models.discriminator import build_discriminator
from tinyfaces_tf.models.gan import SRPretrainer
from tinyfaces_tf.models.gan import TinyFacesGAN
from tinyfaces_tf.models.gan import face_accuracy
from tinyfaces_tf.models.gan import make_checkpoint
from tinyfaces_tf.models.generator import GENERATOR_KINDS
from tinyfaces_tf.models.generator import GeneratorConfig
from tinyfaces_tf.models.generator import build_generator
