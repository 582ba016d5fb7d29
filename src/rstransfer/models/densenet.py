"""DenseNet encoders (Huang et al. 2017) for scene classification: ``keras.applications``'
DenseNet without its top, global pooling, stable layer names.

``build_densenet_encoder(...)`` returns an uncompiled, *flat* ``keras.Model`` named ``name``.
It rebuilds keras.applications' DenseNet graph layer for layer (the generic builder
``DenseNet(blocks)`` is private there), with the keras.applications layer names in their Keras 3
spelling (``conv1_conv``, ``conv2_block1_0_bn``, ..., ``relu``; tf_keras writes ``conv1/conv``).
Its output is the pooled feature vector of layer ``avg_pool`` (or ``max_pool``).
The default ``blocks=(6, 12, 24, 16)`` is DenseNet121 (1024 features). Other ``blocks``
(e.g. ``(2, 2, 2, 2)``, 128 features: a much cheaper stand-in for the 2-core demo) keep the
same naming scheme. ``weights`` is ``None`` (random init) or the path of a local ImageNet file
(``densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5``); nothing is ever downloaded.

The builder's keyword arguments are plain JSON values, so a step can store them (e.g. in
``train.json`` under ``"encoder"``) and another step rebuild the same encoder before loading
its ``*.weights.h5``: ``build_densenet_encoder(**record["encoder"])``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rstransfer.core.errors import ConfigError, DatasetNotFoundError

DENSENET121_BLOCKS = (6, 12, 24, 16)
GROWTH = 32
POOLING = {"avg": "avg_pool", "max": "max_pool"}
#: keras.applications.densenet.preprocess_input ("torch" mode): x / 255, then per-channel ImageNet
#: mean and std; the encoders of rstransfer are always fed this way (random init or not)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def feature_dim(blocks: Sequence[int]) -> int:
    """Width of the pooled features (growth rate 32, compression 0.5 per transition)."""
    channels = 64
    for i, n in enumerate(blocks):
        channels += 32 * n
        if i < len(blocks) - 1:
            channels //= 2
    return channels


def build_densenet_encoder(
    input_shape: Sequence[int] = (256, 256, 3),
    weights: str | None = None,
    blocks: Sequence[int] = DENSENET121_BLOCKS,
    pooling: str = "avg",
    name: str = "densenet121_encoder",
) -> Any:
    """DenseNet without top + global pooling -> ``(batch, feature_dim(blocks))``.

    Args:
        input_shape: (H, W, C); H, W >= 32.
        weights: None, or a local ImageNet ``.h5`` file (only for DenseNet121 blocks and 3 channels).
        blocks: dense blocks' layer counts; DenseNet121 by default.
        pooling: "avg" or "max" (global pooling layer ``avg_pool`` / ``max_pool``).
        name: the model's name.

    Raises:
        ConfigError: bad arguments. DatasetNotFoundError: ``weights`` file missing.
    """
    from rstransfer.core.keras import keras

    shape = tuple(int(v) for v in input_shape)
    if len(shape) != 3 or min(shape[:2]) < 32:
        raise ConfigError(f"DenseNet: input_shape must be (H, W, C) with H, W >= 32, got {shape}")
    if pooling not in POOLING:
        raise ConfigError(f"DenseNet: pooling must be one of {sorted(POOLING)}, got {pooling!r}")
    if weights is not None:
        if tuple(blocks) != DENSENET121_BLOCKS or shape[2] != 3:
            raise ConfigError("DenseNet: ImageNet weights need blocks (6, 12, 24, 16) and 3 input channels")
        if not Path(weights).is_file():
            raise DatasetNotFoundError(
                f"DenseNet: ImageNet weights file {weights!r} not found (set weights: null, or the path of "
                "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5; nothing is downloaded)"
            )
    inputs = keras.Input(shape=shape, name="image")
    x = _densenet_body(keras, inputs, blocks)
    pool = keras.layers.GlobalAveragePooling2D if pooling == "avg" else keras.layers.GlobalMaxPooling2D
    model = keras.Model(inputs, pool(name=POOLING[pooling])(x), name=name)
    if weights is not None:
        copy_imagenet_weights(model, str(weights), shape)
    return model


def _densenet_body(keras: Any, x: Any, blocks: Sequence[int]) -> Any:
    """keras.applications' DenseNet graph, layer for layer and name for name as in Keras 3
    (tf_keras spells ``conv1_conv`` as ``conv1/conv``; Keras 3 forbids "/" in names). The two
    zero-padding layers, unnamed there, are ``conv1_pad`` and ``pool1_pad`` here."""
    layers = keras.layers

    def bn(t: Any, name: str) -> Any:
        return layers.BatchNormalization(axis=3, epsilon=1.001e-5, name=name)(t)

    def conv_block(t: Any, name: str) -> Any:
        t1 = layers.Activation("relu", name=name + "_0_relu")(bn(t, name + "_0_bn"))
        t1 = layers.Conv2D(4 * GROWTH, 1, use_bias=False, name=name + "_1_conv")(t1)
        t1 = layers.Activation("relu", name=name + "_1_relu")(bn(t1, name + "_1_bn"))
        t1 = layers.Conv2D(GROWTH, 3, padding="same", use_bias=False, name=name + "_2_conv")(t1)
        return layers.Concatenate(axis=3, name=name + "_concat")([t, t1])

    def transition(t: Any, name: str) -> Any:
        t = layers.Activation("relu", name=name + "_relu")(bn(t, name + "_bn"))
        t = layers.Conv2D(int(t.shape[-1]) // 2, 1, use_bias=False, name=name + "_conv")(t)
        return layers.AveragePooling2D(2, strides=2, name=name + "_pool")(t)

    x = layers.ZeroPadding2D(padding=((3, 3), (3, 3)), name="conv1_pad")(x)
    x = layers.Conv2D(64, 7, strides=2, use_bias=False, name="conv1_conv")(x)
    x = layers.Activation("relu", name="conv1_relu")(bn(x, "conv1_bn"))
    x = layers.ZeroPadding2D(padding=((1, 1), (1, 1)), name="pool1_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    for stage, n in enumerate(blocks):
        for i in range(n):
            x = conv_block(x, f"conv{stage + 2}_block{i + 1}")
        if stage < len(blocks) - 1:
            x = transition(x, f"pool{stage + 2}")
    return layers.Activation("relu", name="relu")(bn(x, "bn"))


def copy_imagenet_weights(model: Any, path: str, shape: tuple[int, ...]) -> list[str]:
    """Load a local ImageNet no-top file through keras.applications.DenseNet121, then copy
    every weighted layer into ``model`` by name; returns the copied layer names."""
    from rstransfer.core.keras import keras

    reference = keras.applications.DenseNet121(include_top=False, weights=path, input_shape=shape)
    copied = []
    for layer in reference.layers:
        if layer.weights:
            model.get_layer(layer.name.replace("/", "_")).set_weights(layer.get_weights())
            copied.append(layer.name)
    return copied


def preprocess(x: Any) -> Any:
    """Pixels 0..255 (float, NumPy or TensorFlow, channels last) -> the encoder's input."""
    import numpy as np

    channels = int(x.shape[-1])
    mean = IMAGENET_MEAN if channels == 3 else (0.5,) * channels
    std = IMAGENET_STD if channels == 3 else (0.25,) * channels
    return (x / 255.0 - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)


def encoder_kwargs(input_shape: Sequence[int], weights: str | None = None,
                   blocks: Sequence[int] = DENSENET121_BLOCKS, pooling: str = "avg",
                   name: str = "densenet121_encoder") -> dict[str, Any]:
    """The JSON-able kwargs of :func:`build_densenet_encoder` (what a run records)."""
    return {"input_shape": [int(v) for v in input_shape], "weights": weights, "blocks": [int(b) for b in blocks],
            "pooling": pooling, "name": name}
