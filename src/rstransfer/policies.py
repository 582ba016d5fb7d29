"""Fine-tuning policies as data: which layers train, per model.

Layers are selected by name pattern (fnmatch), never by index. ``from_scratch`` policies
ignore the pretrained weights; ``inserted_dense`` adds a fresh ReLU Dense layer before the
head (the paper's Network_1). The head is re-initialised when the class count differs,
because its weights cannot be copied (see ``transfer_weights``).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Policy:
    name: str
    model: str
    trainable: tuple[str, ...]  # fnmatch patterns over layer names; ("*",) = every layer
    from_scratch: bool = False
    inserted_dense: int = 0
    description: str = ""


_HYBRIDSN = (
    Policy("Original", "hybridsn", ("*",), from_scratch=True, description="all layers, from scratch"),
    Policy(
        "Network_1",
        "hybridsn",
        ("dense_inserted", "dense_3"),
        inserted_dense=128,
        description="Dense_3 + an added Dense(128, ReLU) before it",
    ),
    Policy("Network_2", "hybridsn", ("dense_3",), description="Dense_3"),
    Policy("Network_3", "hybridsn", ("dense_3", "dense_2"), description="Dense_3, Dense_2"),
    Policy("Network_4", "hybridsn", ("dense_3", "dense_2", "dense_1"), description="Dense_3, Dense_2, Dense_1"),
    Policy(
        "Network_5",
        "hybridsn",
        ("dense_3", "dense_2", "dense_1", "conv2d_1"),
        description="Dense_3, Dense_2, Dense_1, Conv2d_1",
    ),
    Policy("Network_6", "hybridsn", ("dense_3", "conv2d_1"), description="Dense_3, Conv2d_1"),
    Policy(
        "Network_7",
        "hybridsn",
        ("dense_3", "dense_2", "dense_1", "conv2d_1", "conv3d_3"),
        description="Dense_3, Dense_2, Dense_1, Conv2d_1, Conv3d_3",
    ),
)

# ResNet50-FCN (segmentation): the experiment's `pretrained` decides the starting weights;
# frozen BatchNormalization layers run in inference mode (tf_keras, trainable=False).
_RESNET50_FCN = (
    Policy("fcn_heads", "resnet50_fcn", ("fcn_*",), description="the 1x1 score heads (fcn_*)"),
    Policy("fcn_stage5", "resnet50_fcn", ("conv5_*", "fcn_*"), description="ResNet50 stage 5 (conv5_*) + heads"),
    Policy("fcn_all", "resnet50_fcn", ("*",), description="every layer"),
)

POLICIES: dict[str, Policy] = {p.name: p for p in (*_HYBRIDSN, *_RESNET50_FCN)}


def get_policy(name: str) -> Policy:
    try:
        return POLICIES[name]
    except KeyError:
        raise KeyError(f"unknown policy {name!r}; valid: {sorted(POLICIES)}") from None


def policies_for(model: str) -> list[Policy]:
    return [p for p in POLICIES.values() if p.model == model]


def is_trainable(policy: Policy, layer_name: str) -> bool:
    return any(fnmatch.fnmatchcase(layer_name, pat) for pat in policy.trainable)


def apply_policy(model: Any, policy: Policy) -> Any:
    """Set ``trainable`` per layer; the caller (re)compiles afterwards."""
    for layer in model.layers:
        layer.trainable = is_trainable(policy, layer.name)
    return model


def transfer_weights(source: Any, target: Any, skip: tuple[str, ...] = ()) -> list[str]:
    """Copy weights layer by layer, by name, where shapes match; return the copied names.

    A head whose class count differs (or an inserted layer, or a layer named in ``skip``)
    keeps its fresh initialisation.
    """
    copied = []
    src = {layer.name: layer for layer in source.layers}
    for layer in target.layers:
        weights = layer.get_weights()
        if not weights or layer.name not in src or layer.name in skip:
            continue
        theirs = src[layer.name].get_weights()
        if len(theirs) == len(weights) and all(a.shape == b.shape for a, b in zip(theirs, weights, strict=True)):
            layer.set_weights(theirs)
            copied.append(layer.name)
    return copied


def policy_table(model_name: str, input_shape: tuple[int, ...], n_classes: int) -> list[dict[str, Any]]:
    """Trainable parameters per policy, like Table 5 of the fine-tuning paper."""
    from .models import count_params, get_model

    rows = []
    for policy in policies_for(model_name):
        model = get_model(model_name)(input_shape, n_classes, inserted_dense=policy.inserted_dense)
        apply_policy(model, policy)
        trainable = count_params(model.trainable_weights)
        total = count_params(model.weights)
        rows.append(
            {
                "policy": policy.name,
                "trainable_layers": policy.description,
                "trainable_params": trainable,
                "total_params": total,
                "trainable_ratio": trainable / total,
            }
        )
    return rows
