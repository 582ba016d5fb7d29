"""BYOL (Grill et al., NeurIPS 2020) as a plain Keras model with a custom ``train_step``.

* online network: encoder -> projector (MLP) -> predictor (MLP), trained by the optimizer;
* target network: encoder -> projector of the same shapes, *not trainable*: after every
  optimizer step it moves towards the online weights by an explicit EMA,
  ``target <- tau * target + (1 - tau) * online`` over every weight (BatchNorm statistics too),
  with ``tau`` rising from ``tau_base`` to 1 on a cosine schedule over all training steps;
* loss: the symmetric normalised MSE ``2 - 2 cos(q(z1), sg(z2')) + 2 - 2 cos(q(z2), sg(z1'))``
  over two augmented views (``pipeline.byol_views``).

Horovod: ``optimizer.minimize`` (Horovod's DistributedOptimizer allreduces inside it) runs
before the EMA, so every rank applies the EMA to identical online weights and the target's
weights stay identical on every rank (the broadcast at the start covers the target too: it is
part of ``model.variables``). The one exception are BatchNorm moving statistics, which, as in any
Horovod-trained BN network, come from each rank's own batches; rank 0's are saved. The step
counter is a model weight, so a checkpoint resumes the tau schedule exactly.

The networks are plain layers (they build under Keras 3); ``train_step`` uses TensorFlow's
GradientTape (the training backend of this project).
"""

from __future__ import annotations

import math
from typing import Any

from rstransfer.core.keras import keras


def tau_at(step: float, total_steps: int, base: float) -> float:
    """The EMA coefficient after ``step`` of ``total_steps``: base at 0, 1 at the end (cosine)."""
    frac = min(max(step / max(total_steps, 1), 0.0), 1.0)
    return 1.0 - (1.0 - base) * (math.cos(math.pi * frac) + 1.0) / 2.0


def build_mlp(in_dim: int, hidden: int, out_dim: int, name: str) -> Any:
    """Linear -> BN -> ReLU -> Linear (BYOL's projector and predictor)."""
    inputs = keras.Input(shape=(in_dim,), name=f"{name}_input")
    x = keras.layers.Dense(hidden, name=f"{name}_dense_1")(inputs)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    x = keras.layers.Activation("relu", name=f"{name}_relu")(x)
    return keras.Model(inputs, keras.layers.Dense(out_dim, name=f"{name}_dense_2")(x), name=name)


def normalised_mse(p: Any, z: Any) -> Any:
    """Per-sample ``2 - 2 cos(p, z)`` (= squared distance of the L2-normalised vectors)."""
    import tensorflow as tf

    p = tf.math.l2_normalize(p, axis=-1)
    z = tf.math.l2_normalize(z, axis=-1)
    return 2.0 - 2.0 * tf.reduce_sum(p * z, axis=-1)


class BYOL(keras.Model):
    """Online (encoder, projector, predictor) + EMA target (encoder, projector)."""

    def __init__(self, encoder: Any, target_encoder: Any, hidden: int, dim: int, tau_base: float,
                 total_steps: int, **kwargs: Any) -> None:
        super().__init__(name=kwargs.pop("name", "byol"), **kwargs)
        feat = int(encoder.output_shape[-1])
        self.encoder = encoder
        self.projector = build_mlp(feat, hidden, dim, "online_projector")
        self.predictor = build_mlp(dim, hidden, dim, "predictor")
        self.target_encoder = target_encoder
        self.target_projector = build_mlp(feat, hidden, dim, "target_projector")
        self.target_encoder.set_weights(self.encoder.get_weights())
        self.target_projector.set_weights(self.projector.get_weights())
        self.target_encoder.trainable = False
        self.target_projector.trainable = False
        self.tau_base = float(tau_base)
        self.total_steps = int(total_steps)
        self.steps_done = self.add_weight(name="byol_steps_done", shape=(), initializer="zeros", trainable=False)
        self.loss_tracker = keras.metrics.Mean(name="loss")

    @property
    def metrics(self) -> list[Any]:
        return [self.loss_tracker]

    def online_weights(self) -> list[Any]:
        return self.encoder.weights + self.projector.weights

    def target_weights(self) -> list[Any]:
        return self.target_encoder.weights + self.target_projector.weights

    def call(self, x: Any, training: bool = False) -> Any:
        return self.predictor(self.projector(self.encoder(x, training=training), training=training), training=training)

    def tau(self) -> Any:
        import tensorflow as tf

        frac = tf.clip_by_value(self.steps_done / float(max(self.total_steps, 1)), 0.0, 1.0)
        return 1.0 - (1.0 - self.tau_base) * (tf.cos(math.pi * frac) + 1.0) / 2.0

    def byol_loss(self, v1: Any, v2: Any, training: bool = True) -> Any:
        import tensorflow as tf

        q1 = self(v1, training=training)
        q2 = self(v2, training=training)
        t1 = tf.stop_gradient(self.target_projector(self.target_encoder(v1, training=False), training=False))
        t2 = tf.stop_gradient(self.target_projector(self.target_encoder(v2, training=False), training=False))
        return tf.reduce_mean(normalised_mse(q1, t2) + normalised_mse(q2, t1))

    def ema_update(self) -> None:
        """``target <- tau * target + (1 - tau) * online`` at the current step, then step += 1."""
        tau = self.tau()
        for t, o in zip(self.target_weights(), self.online_weights(), strict=True):
            t.assign(tau * t + (1.0 - tau) * o)
        self.steps_done.assign_add(1.0)

    def train_step(self, data: Any) -> dict[str, Any]:
        import tensorflow as tf

        v1, v2 = data
        online = self.encoder.trainable_weights + self.projector.trainable_weights + self.predictor.trainable_weights
        with tf.GradientTape() as tape:
            loss = self.byol_loss(v1, v2, training=True)
        self.optimizer.minimize(loss, online, tape=tape)
        self.ema_update()
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}


def build_byol(encoder_factory: Any, hidden: int, dim: int, tau_base: float, total_steps: int) -> BYOL:
    """``encoder_factory(name)`` builds one encoder; called twice (online and target)."""
    return BYOL(encoder_factory("encoder"), encoder_factory("target_encoder"), hidden, dim, tau_base, total_steps)


def byol_online_network(encoder: Any, hidden: int = 4096, dim: int = 256) -> Any:
    """The online network as one functional model (encoder -> projector -> predictor): the
    reference build for parameter counts (``Study.models``)."""
    feat = int(encoder.output_shape[-1])
    z = build_mlp(feat, hidden, dim, "online_projector")(encoder.output)
    q = build_mlp(dim, hidden, dim, "predictor")(z)
    return keras.Model(encoder.input, q, name="byol_online")
