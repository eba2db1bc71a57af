"""The same train_step under tf.distribute.MirroredStrategy with two logical CPU replicas: the
per-replica losses are scaled so one distributed step equals one single-device step on the
global batch (SGD, batch-norm-free models so the comparison is exact)."""
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import keras, numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from tinyfaces_tf import models

    def build():
      keras.utils.set_random_seed(0)
      g = models.build_generator("bilinear")
      inputs = keras.Input((64, 64, 3))
      x = keras.layers.Conv2D(4, 3, strides=4)(inputs)
      x = keras.layers.GlobalAveragePooling2D()(x)
      heads = {"gan_logit": keras.layers.Dense(1)(x), "cls_logits": keras.layers.Dense(1)(x),
               "box_deltas": keras.layers.Dense(4)(x)}
      gan = models.TinyFacesGAN(g, keras.Model(inputs, heads))
      gan.compile(g_optimizer=keras.optimizers.SGD(0.1), d_optimizer=keras.optimizers.SGD(0.1))
      return gan

    rng = np.random.default_rng(0)
    batch = {"lr": rng.uniform(-1, 1, (8, 16, 16, 3)).astype("float32"),
             "hr": rng.uniform(-1, 1, (8, 64, 64, 3)).astype("float32"),
             "label": np.array([1, 0] * 4, "int32"),
             "box_target": rng.normal(size=(8, 4)).astype("float32")}
    single = build()
    single.fit(tf.data.Dataset.from_tensors(batch), epochs=1, verbose=0)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
      mirrored = build()
    mirrored.fit(tf.data.Dataset.from_tensors(batch), epochs=1, verbose=0)
    for a, b in zip(single.discriminator.weights, mirrored.discriminator.weights):
      np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6)
    print("OK", int(mirrored.step.numpy()))
""")


def test_mirrored_strategy_matches_single_device():
  done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                        timeout=300, env={"TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "",
                                          "PATH": "/usr/bin:/bin"})
  assert done.returncode == 0, done.stderr[-3000:]
  assert "OK 1" in done.stdout
