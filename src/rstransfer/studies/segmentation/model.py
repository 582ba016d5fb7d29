"""ResNet50-FCN for semantic segmentation (Long et al., CVPR 2015, with a ResNet50 backbone).

Backbone: ``keras.applications.ResNet50(include_top=False, weights=None)`` with its own layer
names (``conv1_conv`` ... ``conv5_block3_out``). Heads: a 1x1 convolution to ``n_classes`` on
the outputs of stages 3, 4 and 5 (``conv3_block4_out``, ``conv4_block6_out``,
``conv5_block3_out``; strides 8, 16, 32), each resized bilinearly to the input size, summed,
softmax. Own layers are named ``fcn_*``. 23,609,234 parameters for 6 classes at 256x256x3.

Pretrained backbones never download: ``imagenet`` means the standard Keras file
``resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5`` under ``$KERAS_HOME/models`` (default
``~/.keras/models``), and a path means any Keras HDF5 weights file holding every backbone
layer by name (that notop file, a backbone saved with ``save_weights("x.h5")``, or an
rstransfer FCN ``weights.h5``, whose ``fcn_*`` heads are then ignored).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rstransfer.core.errors import DataFormatError, DatasetNotFoundError
from rstransfer.core.keras import keras

IMAGENET_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
STAGES = {3: "conv3_block4_out", 4: "conv4_block6_out", 5: "conv5_block3_out"}
#: the layers this module adds to ResNet50 (all other layer names are Keras' own)
OWN_LAYERS = frozenset(
    {"fcn_input", "fcn_sum", "fcn_softmax"} | {f"fcn_score{s}" for s in STAGES} | {f"fcn_up{s}" for s in STAGES}
)


def keras_models_dir() -> Path:
    """Where Keras caches application weights: ``$KERAS_HOME/models`` (default ~/.keras/models)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models"


def resolve_weights(spec: str | Path | None) -> Path | None:
    """``None``/``"none"`` -> None; ``"imagenet"`` -> the local Keras file (never downloaded);
    anything else -> that file. Raises DatasetNotFoundError naming where the file must be."""
    if spec is None or str(spec) == "none":
        return None
    if str(spec) == "imagenet":
        path = keras_models_dir() / IMAGENET_FILE
        if not path.is_file():
            raise DatasetNotFoundError(
                f"pretrained imagenet: {path} not found; nothing is downloaded: put the Keras file {IMAGENET_FILE} "
                f"there (or set KERAS_HOME to the folder holding models/{IMAGENET_FILE}, or give a weights path)"
            )
        return path
    path = Path(spec)
    if not path.is_file():
        raise DatasetNotFoundError(f"pretrained weights file {path} not found")
    return path


def _h5_layer_names(path: Path) -> list[str]:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            group = f["model_weights"] if "model_weights" in f else f
            names = group.attrs["layer_names"]
    except (OSError, KeyError) as exc:
        raise DataFormatError(
            f"{path}: not a Keras HDF5 weights file with layer names (like {IMAGENET_FILE}): "
            f"{str(exc).splitlines()[0]}"
        ) from exc
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def load_backbone_weights(backbone: Any, path: Path) -> None:
    """Load every weighted backbone layer by name from ``path``; extra layers in the file are
    ignored, a missing or differently shaped layer is an error."""
    names = set(_h5_layer_names(path))
    missing = [layer.name for layer in backbone.layers if layer.weights and layer.name not in names]
    if missing:
        raise DataFormatError(
            f"{path}: not ResNet50 backbone weights: {len(missing)} weighted layer(s) missing, e.g. {missing[0]}"
        )
    try:
        backbone.load_weights(str(path), by_name=True)
    except ValueError as exc:
        raise DataFormatError(
            f"{path}: weights do not fit the backbone (input channels?): {' '.join(str(exc).split())[:300]}"
        ) from exc


def build_resnet50_fcn(
    input_shape: tuple[int, int, int],
    n_classes: int,
    weights: str | Path | None = None,
    *,
    inserted_dense: int = 0,
    bn_momentum: float | None = None,
    name: str = "resnet50_fcn",
) -> keras.Model:
    """Build (not compile) the FCN.

    Args:
        input_shape: (patch, patch, channels); patch a multiple of 32, channels 3 (IRRG) or 4 (+DSM).
        n_classes: filters of each 1x1 score head.
        weights: backbone weights: None/"none", "imagenet" (local Keras file) or a file path.
        inserted_dense: must be 0 (the registry's common signature; used by HybridSN only).
        bn_momentum: momentum of the backbone's BatchNormalization moving statistics (None:
            Keras' 0.99). A short schedule needs a lower one: after n steps the moving mean
            still carries momentum**n of its initial value (0.99**40 = 0.67, 0.9**40 = 0.01).
        name: model name.

    Raises:
        ValueError: bad shape or arguments.
        DatasetNotFoundError: the weights file is missing (with where to put it).
        DataFormatError: the weights file does not fit the backbone.
    """
    h, w, c = input_shape
    if h != w or h % 32 or h < 32:
        raise ValueError(f"input_shape must be (P, P, C) with P a multiple of 32, got {input_shape}")
    if inserted_dense:
        raise ValueError("resnet50_fcn has no inserted Dense layer (inserted_dense must be 0)")
    path = resolve_weights(weights)
    layers = keras.layers
    inputs = keras.Input(shape=input_shape, name="fcn_input")
    backbone = keras.applications.ResNet50(include_top=False, weights=None, input_tensor=inputs)
    if path is not None:
        load_backbone_weights(backbone, path)
    if bn_momentum is not None:
        for layer in backbone.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = bn_momentum
    scores = []
    for stage, tap in STAGES.items():
        x = layers.Conv2D(n_classes, 1, name=f"fcn_score{stage}")(backbone.get_layer(tap).output)
        scores.append(layers.Resizing(h, w, interpolation="bilinear", name=f"fcn_up{stage}")(x))
    x = layers.Add(name="fcn_sum")(scores)
    outputs = layers.Softmax(name="fcn_softmax")(x)
    return keras.Model(inputs, outputs, name=name)


def backbone_of(model: Any) -> Any:
    """The ResNet50 part of a built FCN (shares its layers), e.g. to save it in the notop layout."""
    return keras.Model(model.input, model.get_layer(STAGES[5]).output, name="resnet50")
