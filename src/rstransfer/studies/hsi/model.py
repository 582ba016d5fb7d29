"""HybridSN (Roy et al., IEEE GRSL 2020): a 3-D/2-D CNN for hyperspectral patches.

Layer table (exactly the paper's): Conv3D 8@3x3x7, 16@3x3x5, 32@3x3x3 (ReLU) -> reshape ->
Conv2D 64@3x3 (ReLU) -> Flatten -> Dense 256 -> Dropout 0.4 -> Dense 128 -> Dropout 0.4 ->
Dense C softmax. 5,122,176 parameters for a 25x25x30x1 input and 16 classes.
"""

from __future__ import annotations

from rstransfer.core.keras import keras


def build_hybridsn(
    input_shape: tuple[int, int, int, int],
    n_classes: int,
    *,
    inserted_dense: int = 0,
    dropout: float = 0.4,
    name: str = "hybridsn",
) -> keras.Model:
    """Build (not compile) HybridSN.

    Args:
        input_shape: (window, window, components, 1).
        n_classes: units of the softmax head ``dense_3``.
        inserted_dense: if > 0, a ReLU Dense layer ``dense_inserted`` of that many units sits
            between ``dropout_2`` and ``dense_3`` (fine-tuning policy Network_1).
        dropout: rate of ``dropout_1``/``dropout_2``.
        name: model name.
    """
    w, w2, k, ch = input_shape
    if w != w2 or ch != 1:
        raise ValueError(f"input_shape must be (window, window, components, 1), got {input_shape}")
    if w < 9 or k < 13:
        raise ValueError(f"HybridSN needs window >= 9 and >= 13 components, got window={w}, components={k}")
    layers = keras.layers
    inputs = keras.Input(shape=input_shape, name="patch")
    x = layers.Conv3D(8, (3, 3, 7), activation="relu", name="conv3d_1")(inputs)
    x = layers.Conv3D(16, (3, 3, 5), activation="relu", name="conv3d_2")(x)
    x = layers.Conv3D(32, (3, 3, 3), activation="relu", name="conv3d_3")(x)
    s = w - 6
    x = layers.Reshape((s, s, (k - 12) * 32), name="reshape")(x)
    x = layers.Conv2D(64, (3, 3), activation="relu", name="conv2d_1")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(256, activation="relu", name="dense_1")(x)
    x = layers.Dropout(dropout, name="dropout_1")(x)
    x = layers.Dense(128, activation="relu", name="dense_2")(x)
    x = layers.Dropout(dropout, name="dropout_2")(x)
    if inserted_dense:
        x = layers.Dense(inserted_dense, activation="relu", name="dense_inserted")(x)
    outputs = layers.Dense(n_classes, activation="softmax", name="dense_3")(x)
    return keras.Model(inputs, outputs, name=name)
