"""Model builders, registered by name. Builders return an uncompiled ``keras.Model``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .fcn import build_resnet50_fcn
from .hybridsn import build_hybridsn

MODELS: dict[str, Callable[..., Any]] = {
    "hybridsn": build_hybridsn,
    "resnet50_fcn": build_resnet50_fcn,
}


def get_model(name: str) -> Callable[..., Any]:
    try:
        return MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; valid: {sorted(MODELS)}") from None


def count_params(weights: list[Any]) -> int:
    import numpy as np

    return int(sum(int(np.prod(w.shape)) for w in weights))
