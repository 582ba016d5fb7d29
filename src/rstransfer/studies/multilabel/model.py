"""The multi-label classifier: a DenseNet encoder + one sigmoid dense layer ``predictions``.

The head's input (the encoder's pooled features, layer ``avg_pool``) is the ``h`` of the MGE
query strategy; :func:`feature_model` exposes both ``h`` and the probabilities.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rstransfer.core.errors import DataFormatError
from rstransfer.models.densenet import POOLING, build_densenet_encoder

HEAD = "predictions"
ENCODER_FILE = "encoder.weights.h5"


def build_classifier(encoder: Any, n_labels: int, name: str = "multilabel_classifier") -> Any:
    """``encoder`` -> Dense(n_labels, sigmoid) named ``predictions`` (a flat, uncompiled model)."""
    from rstransfer.core.keras import keras

    out = keras.layers.Dense(n_labels, activation="sigmoid", name=HEAD)(encoder.output)
    return keras.Model(encoder.input, out, name=name)


def feature_model(classifier: Any, pooling: str = "avg") -> Any:
    """``x -> (h, p)``: the head's input features and the sigmoid outputs (shared weights)."""
    from rstransfer.core.keras import keras

    return keras.Model(classifier.input, [classifier.get_layer(POOLING[pooling]).output, classifier.get_layer(HEAD).output])


def load_encoder(pretrain_dir: str | Path, record: dict[str, Any], name: str = "encoder") -> Any:
    """Rebuild the pre-trained encoder from ``train.json``'s ``"encoder"`` kwargs and load its weights."""
    path = Path(pretrain_dir) / ENCODER_FILE
    if not path.is_file():
        raise DataFormatError(f"{path}: missing; run `rstransfer pretrain --study multilabel` first")
    encoder = build_densenet_encoder(**{**record["encoder"], "weights": None, "name": name})
    encoder.load_weights(str(path))
    return encoder


def reference_classifier() -> Any:
    """DenseNet121 at 256 px + 17 labels (the paper's model; ``Study.models``)."""
    return build_classifier(build_densenet_encoder((256, 256, 3)), 17)


def reference_byol_online() -> Any:
    """BYOL's online network at the paper's sizes (``Study.models``)."""
    from .byol import byol_online_network

    return byol_online_network(build_densenet_encoder((256, 256, 3)), 4096, 256)
