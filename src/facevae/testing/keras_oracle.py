"""Keras 3 stand-ins for the original project's model classes, written from its architecture
(module `variational_autoencoder`: Encoder, Decoder, VAE), used as the oracle in tests.

They keep the original's attribute names (which name the weight groups in `.keras` files),
its Keras defaults (LeakyReLU 0.3, BatchNormalization epsilon 1e-3), the ReLU on both
encoder heads and the way the original loads weights: build the model, then
`model.load_weights("vae.keras")`.

KERAS_BACKEND must be set before Keras is first imported, so import this module (which sets
it to "torch" unless it is set already) before anything else imports keras.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402

PACKAGE = "variational_autoencoder"


@keras.saving.register_keras_serializable(package=PACKAGE)
class Sampler(layers.Layer):
    """mean + exp(log_var / 2) * noise."""

    def call(self, inputs):
        mean, log_var = inputs
        noise = keras.random.normal(keras.ops.shape(mean))
        return mean + keras.ops.exp(0.5 * log_var) * noise


@keras.saving.register_keras_serializable(package=PACKAGE)
class Encoder(keras.Model):
    """4 x [Conv2D(c, 3, 2, 'same') -> BN -> LeakyReLU] -> Flatten -> Dense(latent, relu) x 2."""

    def __init__(self, embedding_size=200, num_channels=128, **kwargs):
        super().__init__(**kwargs)
        self.embedding_size = embedding_size
        self.conv1 = layers.Conv2D(num_channels, (3, 3), strides=2, padding="same")
        self.bn1 = layers.BatchNormalization()
        self.conv2 = layers.Conv2D(num_channels, (3, 3), strides=2, padding="same")
        self.bn2 = layers.BatchNormalization()
        self.conv3 = layers.Conv2D(num_channels, (3, 3), strides=2, padding="same")
        self.bn3 = layers.BatchNormalization()
        self.conv4 = layers.Conv2D(num_channels, (3, 3), strides=2, padding="same")
        self.bn4 = layers.BatchNormalization()
        self.activation = layers.LeakyReLU()
        self.flattening = layers.Flatten()
        self.dense_mean = layers.Dense(embedding_size, activation="relu", name="emb_mean")
        self.dense_log_var = layers.Dense(embedding_size, activation="relu", name="emb_log_var")
        self.sampler = Sampler()

    def call(self, inputs):
        x = inputs
        for conv, bn in ((self.conv1, self.bn1), (self.conv2, self.bn2), (self.conv3, self.bn3),
                         (self.conv4, self.bn4)):
            x = self.activation(bn(conv(x)))
        self.shape_before_flattening = tuple(x.shape[1:])
        x = self.flattening(x)
        mean, log_var = self.dense_mean(x), self.dense_log_var(x)
        return mean, log_var, self.sampler([mean, log_var])

    def get_config(self):  # Keras 3.15 needs it to save; the original (Keras 3.4.1) had none
        return {**super().get_config(), "embedding_size": self.embedding_size,
                "num_channels": self.conv1.filters}


@keras.saving.register_keras_serializable(package=PACKAGE)
class Decoder(keras.Model):
    """Dense -> BN -> LeakyReLU -> Reshape -> 4 x [Conv2DTranspose(c, 3, 2, 'same') -> BN ->
    LeakyReLU] -> Conv2D(3, 3, 'same', sigmoid)."""

    def __init__(self, shape_before_flattening, num_channels=128, **kwargs):
        super().__init__(**kwargs)
        self.shape_before_flattening = tuple(shape_before_flattening)
        self.num_channels = num_channels
        self.dense1 = layers.Dense(int(np.prod(self.shape_before_flattening)))
        self.bn_dense = layers.BatchNormalization()
        self.reshape = layers.Reshape(self.shape_before_flattening)
        self.convtr1 = layers.Conv2DTranspose(num_channels, kernel_size=3, strides=2, padding="same")
        self.bn1 = layers.BatchNormalization()
        self.convtr2 = layers.Conv2DTranspose(num_channels, kernel_size=3, strides=2, padding="same")
        self.bn2 = layers.BatchNormalization()
        self.convtr3 = layers.Conv2DTranspose(num_channels, kernel_size=3, strides=2, padding="same")
        self.bn3 = layers.BatchNormalization()
        self.convtr4 = layers.Conv2DTranspose(num_channels, kernel_size=3, strides=2, padding="same")
        self.bn4 = layers.BatchNormalization()
        self.conv1 = layers.Conv2D(3, (3, 3), strides=1, activation="sigmoid", padding="same")
        self.activation = layers.LeakyReLU()

    def call(self, inputs):
        x = self.activation(self.bn_dense(self.dense1(inputs)))
        x = self.reshape(x)
        for conv, bn in ((self.convtr1, self.bn1), (self.convtr2, self.bn2), (self.convtr3, self.bn3),
                         (self.convtr4, self.bn4)):
            x = self.activation(bn(conv(x)))
        return self.conv1(x)

    def get_config(self):
        return {**super().get_config(), "shape_before_flattening": list(self.shape_before_flattening),
                "num_channels": self.num_channels}


@keras.saving.register_keras_serializable(package=PACKAGE)
class VAE(keras.Model):
    """enc + dec, built by running a random image through the encoder, as the original does."""

    def __init__(self, input_img_size=64, embedding_size=200, num_channels=128, beta=2000, **kwargs):
        super().__init__(**kwargs)
        self.num_channels = num_channels
        self.embedding_size = embedding_size
        self.beta = beta
        self.input_img_size = input_img_size
        self.enc = Encoder(embedding_size=embedding_size, num_channels=num_channels)
        random_input = np.random.random((1, input_img_size, input_img_size, 3)).astype(np.float32)
        _, _, sampled = self.enc(random_input)
        self.dec = Decoder(shape_before_flattening=self.enc.shape_before_flattening, num_channels=num_channels)
        _ = self.dec(sampled)
        self.mse = keras.losses.MeanSquaredError()
        self.tracker_total_loss = keras.metrics.Mean(name="total_loss")
        self.tracker_reconstruct_loss = keras.metrics.Mean(name="reconst_loss")
        self.tracker_kl_loss = keras.metrics.Mean(name="kl_loss")

    def call(self, inputs):
        mean, log_var, sampled = self.enc(inputs)
        return mean, log_var, self.dec(sampled)

    def get_config(self):
        return {**super().get_config(), "input_img_size": self.input_img_size,
                "embedding_size": self.embedding_size, "num_channels": self.num_channels, "beta": self.beta}


def randomize(model: keras.Model, seed: int = 0) -> keras.Model:
    """Give every variable (batch-norm statistics included) non-trivial random values."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        shape = tuple(variable.shape)
        name = variable.path
        if name.endswith("moving_variance") or name.endswith("gamma"):
            value = rng.uniform(0.5, 1.5, shape)
        else:
            value = rng.normal(0, 0.2, shape)
        variable.assign(value.astype(np.float32))
    return model
