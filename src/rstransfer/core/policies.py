"""Fine-tuning policies as data: which layers train. Each study keeps its own table
(``studies/<name>/policies.py``); the mechanics live here once.

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


def table(*policies: Policy) -> dict[str, Policy]:
    """A study's policy table (name -> Policy), in the paper's order."""
    return {p.name: p for p in policies}


def get_policy(table: dict[str, Policy], name: str, study: str = "") -> Policy:
    from rstransfer.core.errors import ConfigError

    try:
        return table[name]
    except KeyError:
        raise ConfigError(f"unknown policy {name!r}{' for ' + study if study else ''}; valid: {', '.join(table)}") from None


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


def policy_table(policies: dict[str, Policy], build: Any) -> list[dict[str, Any]]:
    """Trainable parameters per policy, like Table 5 of the fine-tuning paper.

    ``build(policy)`` returns the study's model for that policy (uncompiled)."""
    from rstransfer.models import count_params

    rows = []
    for policy in policies.values():
        model = build(policy)
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
