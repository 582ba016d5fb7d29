"""Model builders shared by more than one study (a study's own model lives in its package).

Builders return an uncompiled ``keras.Model`` with stable layer names.
"""

from __future__ import annotations

from typing import Any


def count_params(weights: list[Any]) -> int:
    import numpy as np

    return int(sum(int(np.prod(w.shape)) for w in weights))
