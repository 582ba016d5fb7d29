"""The paper's data protocol: a seeded validation/test/pool split and the class-imbalance scenarios.

* Split: validation 25 %, test 25 %, pool 50 % (525/525/1050 of UC Merced's 2100 images),
  stratified by the 21 folder classes (each class splits 25/25/50), seeded.
* Scenario 1 is the pool as is. Scenario k > 1 removes ``remove_per_class[k-1]`` pool samples of
  each of ``n_minority`` minority labels drawn from ``minority_labels`` (paper: three of
  Airplane, Chaparral, Court, Dock, Field, Mobilehome, Sea, Ship, Tank), never two labels of an
  ``exclusive_pairs`` entry together (Dock and Ship co-occur in 98 % of the images). The labels and
  the removed samples depend on ``scenarios.seed`` only, so every strategy and run of a scenario
  sees the same pool. A sample removed for one label is not counted for another: each chosen
  label loses exactly ``remove_per_class[k-1]`` distinct samples.

Pure NumPy: no TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rstransfer.core.errors import ConfigError


def split_indices(class_ids: np.ndarray, val: float, test: float, seed: int) -> dict[str, np.ndarray]:
    """Stratified split: ``{"val", "test", "pool"}`` index arrays (sorted) covering every sample once."""
    if val <= 0 or test <= 0 or val + test >= 1:
        raise ConfigError(f"multilabel.split: val and test must be > 0 with val + test < 1, got {val}, {test}")
    rng = np.random.default_rng(seed)
    out: dict[str, list[int]] = {"val": [], "test": [], "pool": []}
    for c in np.unique(class_ids):
        members = rng.permutation(np.flatnonzero(class_ids == c))
        n_val, n_test = int(round(val * len(members))), int(round(test * len(members)))
        out["val"] += members[:n_val].tolist()
        out["test"] += members[n_val:n_val + n_test].tolist()
        out["pool"] += members[n_val + n_test:].tolist()
    return {k: np.sort(np.asarray(v, dtype=np.int64)) for k, v in out.items()}


def choose_minority(candidates: Sequence[str], n: int, exclusive_pairs: Sequence[Sequence[str]],
                    rng: np.random.Generator) -> list[str]:
    """``n`` labels drawn from ``candidates`` with no two of one exclusive pair together."""
    pool = list(candidates)
    chosen: list[str] = []
    while len(chosen) < n:
        allowed = [c for c in pool if c not in chosen
                   and not any(c in pair and any(o in pair for o in chosen) for pair in exclusive_pairs)]
        if not allowed:
            raise ConfigError(
                f"multilabel.scenarios: cannot draw {n} minority labels from {list(candidates)} "
                f"without an exclusive pair ({[list(p) for p in exclusive_pairs]})"
            )
        chosen.append(allowed[int(rng.integers(len(allowed)))])
    return chosen


def build_scenarios(multilabels: np.ndarray, label_names: Sequence[str], pool: np.ndarray,
                    cfg: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{"1": {...}, "2": {...}, ...}`` for every scenario in ``cfg["remove_per_class"]``.

    Each entry: ``minority`` (the drawn labels, empty for scenario 1), ``removed`` (label ->
    removed dataset indices), ``pool`` (the remaining pool, sorted dataset indices).
    """
    names = list(label_names)
    for name in cfg["minority_labels"]:
        if name not in names:
            raise ConfigError(f"multilabel.scenarios.minority_labels: unknown label {name!r} (labels: {', '.join(names)})")
    rng = np.random.default_rng(cfg["seed"])
    minority = choose_minority(cfg["minority_labels"], cfg["n_minority"], cfg["exclusive_pairs"], rng)
    # one removal order per label, drawn once: scenario k takes its first remove_per_class[k-1]
    order = {name: rng.permutation(pool[multilabels[pool, names.index(name)] == 1]) for name in minority}
    out: dict[str, dict[str, Any]] = {}
    for k, count in enumerate(cfg["remove_per_class"], start=1):
        if k == 1 and count != 0:
            raise ConfigError("multilabel.scenarios.remove_per_class: scenario 1 is the pool as is (first entry 0)")
        removed: dict[str, list[int]] = {}
        taken: set[int] = set()
        for name in minority if count else []:
            free = [int(i) for i in order[name] if int(i) not in taken]
            if len(free) < count:
                raise ConfigError(
                    f"multilabel.scenarios.remove_per_class: scenario {k} removes {count} '{name}' samples, "
                    f"but the pool holds only {len(free)} not removed for another label"
                )
            removed[name] = sorted(free[:count])
            taken.update(free[:count])
        out[str(k)] = {
            "minority": minority if count else [],
            "removed": removed,
            "pool": sorted(int(i) for i in pool if int(i) not in taken),
        }
    return out
