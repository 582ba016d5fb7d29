"""The multispectral U-Net: builder, head replacement and first-conv band inflation.

``build_unet`` follows MATLAB's ``unetLayers`` (encoder depth 4, two 3x3 convolutions per
stage, 2x2 max pooling, 2x2 transposed-convolution up-sampling, one skip connection per stage,
a 1x1 convolution head with softmax), with BatchNormalization after every convolution. Every
layer has a stable name:

* encoder stage ``s`` = 1..depth: ``enc{s}_conv1``, ``enc{s}_bn1``, ``enc{s}_relu1``,
  ``enc{s}_conv2``, ``enc{s}_bn2``, ``enc{s}_relu2`` (the skip tap), ``enc{s}_pool``;
* bridge: ``bridge_conv1`` ... ``bridge_relu2`` and ``bridge_dropout`` (when dropout > 0);
* decoder stage ``s`` = depth..1: ``dec{s}_upconv``, ``dec{s}_uprelu``, ``dec{s}_concat``
  (inputs: ``enc{s}_relu2`` and ``dec{s}_uprelu``), ``dec{s}_conv1`` ... ``dec{s}_relu2``;
* head: ``head_conv`` (1x1, one filter per class) and ``head_softmax``.

Plain Keras layers only: the builder runs under tf_keras and under Keras 3 (JAX too).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

HEAD_LAYERS = ("head_conv", "head_softmax")
FEATURES = "dec1_relu2"  # the layer the head reads
FIRST_CONV = "enc1_conv1"


def _conv_block(keras: Any, x: Any, filters: int, prefix: str, bn_momentum: float | None) -> Any:
    for i in (1, 2):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=bn_momentum is None, name=f"{prefix}_conv{i}")(x)
        if bn_momentum is not None:
            x = keras.layers.BatchNormalization(momentum=bn_momentum, name=f"{prefix}_bn{i}")(x)
        x = keras.layers.Activation("relu", name=f"{prefix}_relu{i}")(x)
    return x


def add_head(x: Any, n_classes: int) -> Any:
    """The head on a feature tensor: ``head_conv`` (1x1) and ``head_softmax`` (float32)."""
    from rstransfer.core.keras import keras

    x = keras.layers.Conv2D(n_classes, 1, name=HEAD_LAYERS[0])(x)
    return keras.layers.Activation("softmax", dtype="float32", name=HEAD_LAYERS[1])(x)


def build_unet(
    input_shape: Sequence[int | None],
    n_classes: int,
    depth: int = 4,
    base_filters: int = 32,
    *,
    batch_norm: bool = True,
    bn_momentum: float = 0.99,
    dropout: float = 0.0,
    name: str = "unet",
) -> Any:
    """An uncompiled U-Net for ``input_shape = (H, W, bands)`` (H, W may be None; given sizes
    must be divisible by ``2**depth``) and ``n_classes`` classes."""
    from rstransfer.core.keras import keras

    shape = tuple(input_shape)
    if len(shape) != 3 or shape[-1] is None or shape[-1] < 1:
        raise ValueError(f"input_shape must be (height, width, bands) with bands >= 1, got {shape}")
    if depth < 1 or base_filters < 1 or n_classes < 1:
        raise ValueError(f"depth, base_filters and n_classes must be >= 1 (got {depth}, {base_filters}, {n_classes})")
    for size in shape[:2]:
        if size is not None and size % 2**depth:
            raise ValueError(f"input size {size} is not divisible by 2**depth = {2**depth}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")

    bn = bn_momentum if batch_norm else None
    inputs = keras.Input(shape, name="input")
    x = inputs
    skips = {}
    for s in range(1, depth + 1):
        x = _conv_block(keras, x, base_filters * 2 ** (s - 1), f"enc{s}", bn)
        skips[s] = x
        x = keras.layers.MaxPooling2D(2, name=f"enc{s}_pool")(x)
    x = _conv_block(keras, x, base_filters * 2**depth, "bridge", bn)
    if dropout:
        x = keras.layers.Dropout(dropout, name="bridge_dropout")(x)
    for s in range(depth, 0, -1):
        filters = base_filters * 2 ** (s - 1)
        x = keras.layers.Conv2DTranspose(filters, 2, strides=2, name=f"dec{s}_upconv")(x)
        x = keras.layers.Activation("relu", name=f"dec{s}_uprelu")(x)
        x = keras.layers.Concatenate(name=f"dec{s}_concat")([skips[s], x])
        x = _conv_block(keras, x, filters, f"dec{s}", bn)
    return keras.Model(inputs, add_head(x, n_classes), name=name)


def unet_depth(model: Any) -> int:
    """Encoder depth of a model from :func:`build_unet` (its ``enc*_pool`` layers)."""
    return sum(1 for layer in model.layers if layer.name.startswith("enc") and layer.name.endswith("_pool"))


def n_classes_of(model: Any) -> int:
    return int(model.get_layer(HEAD_LAYERS[0]).filters)


def _copy_all(source: Any, target: Any, skip: tuple[str, ...] = ()) -> list[str]:
    """Copy weights by layer name; raise if a weighted layer of ``target`` (not in ``skip``)
    found none to copy (a renamed or reshaped layer would silently start from scratch)."""
    from rstransfer.core.policies import transfer_weights

    copied = transfer_weights(source, target, skip=skip)
    missing = [layer.name for layer in target.layers if layer.weights and layer.name not in copied + list(skip)]
    if missing:
        raise ValueError(f"{source.name}: no weights of matching shape for {', '.join(missing)}")
    return copied


def replace_head(model: Any, n_classes: int, *, features: str = FEATURES) -> Any:
    """A new model: the graph of ``model`` from its input to ``features`` rebuilt layer by layer
    (``clone_model``, so every skip connection on the way is kept and every layer keeps its
    name), every kept weight copied by name, and a fresh head for ``n_classes`` classes."""
    from rstransfer.core.keras import keras

    try:
        feature_layer = model.get_layer(features)
    except ValueError:
        raise ValueError(f"{model.name}: no layer {features!r} to attach the head to") from None
    trunk = keras.Model(model.inputs, feature_layer.output, name=f"{model.name}_trunk")
    fresh = keras.models.clone_model(trunk)
    _copy_all(trunk, fresh)
    return keras.Model(fresh.inputs, add_head(fresh.outputs[0], n_classes), name=model.name)


def band_mapping(n_bands: int, mapping: Sequence[int] | None = None) -> Any:
    """The (3, n_bands) matrix ``A`` of the inflated kernel ``K'[.., b, :] = sum_c A[c, b] K[.., c, :]``.

    n_bands >= 3: band ``b`` copies RGB channel ``mapping[b]`` (default ``b % 3``), divided by
    the number of bands that copy that channel, so an N-band image whose bands are copies of
    the RGB channels (band b = channel mapping[b]) gives exactly the RGB model's first-layer
    output. n_bands < 3: band ``b`` sums the channels ``c`` with ``c % n_bands == b`` (a grey
    image gives the RGB model's output on the grey RGB image).
    """
    import numpy as np

    a = np.zeros((3, n_bands), dtype=np.float64)
    if n_bands >= 3:
        mapping = [b % 3 for b in range(n_bands)] if mapping is None else list(mapping)
        if len(mapping) != n_bands or any(m not in (0, 1, 2) for m in mapping):
            raise ValueError(f"mapping must give an RGB channel 0..2 for each of {n_bands} bands, got {mapping}")
        counts = np.bincount(mapping, minlength=3)
        for b, c in enumerate(mapping):
            a[c, b] = 1.0 / counts[c]
    else:
        if mapping is not None:
            raise ValueError("mapping applies to 3 or more bands")
        for c in range(3):
            a[c, c % n_bands] = 1.0
    return a


def inflate_first_conv(
    model: Any, n_bands: int, *, first: str = FIRST_CONV, mapping: Sequence[int] | None = None
) -> Any:
    """An ``n_bands`` copy of an RGB model: same graph and names, every weight copied by name,
    the first convolution's kernel inflated by :func:`band_mapping` (repeat and rescale)."""
    import numpy as np

    from rstransfer.core.keras import keras

    rgb = model.get_layer(first)
    weights = rgb.get_weights()
    if weights[0].shape[2] != 3:
        raise ValueError(f"{model.name}: {first} reads {weights[0].shape[2]} bands, not 3 (RGB)")
    shape = tuple(model.input_shape[1:-1]) + (n_bands,)
    fresh = keras.models.clone_model(model, input_tensors=keras.Input(shape, name=model.inputs[0].name.split(":")[0]))
    _copy_all(model, fresh, skip=(first,))
    kernel = np.einsum("hwcf,cb->hwbf", weights[0].astype(np.float64), band_mapping(n_bands, mapping))
    fresh.get_layer(first).set_weights([kernel.astype(weights[0].dtype), *weights[1:]])
    return fresh
