"""The multilabel study's split and imbalance scenarios (pure NumPy)."""

from __future__ import annotations

import numpy as np
import pytest

from rstransfer.core.errors import ConfigError
from rstransfer.data.ucmerced import LABEL_NAMES
from rstransfer.studies.multilabel.scenarios import build_scenarios, choose_minority, split_indices

CFG = {
    "remove_per_class": [0, 20, 40],
    "minority_labels": ["airplane", "chaparral", "court", "dock", "field", "mobile-home", "sea", "ship", "tanks"],
    "n_minority": 3,
    "exclusive_pairs": [["dock", "ship"]],
    "seed": 0,
}


def test_split_is_the_papers_525_525_1050_stratified() -> None:
    class_ids = np.repeat(np.arange(21), 100)
    split = split_indices(class_ids, 0.25, 0.25, seed=1)
    assert [len(split[k]) for k in ("val", "test", "pool")] == [525, 525, 1050]
    every = np.concatenate(list(split.values()))
    assert sorted(every.tolist()) == list(range(2100))
    for c in range(21):
        assert (class_ids[split["pool"]] == c).sum() == 50
    assert not np.array_equal(split["pool"], split_indices(class_ids, 0.25, 0.25, seed=2)["pool"])
    with pytest.raises(ConfigError, match="val and test"):
        split_indices(class_ids, 0.5, 0.5, seed=0)


def test_dock_and_ship_are_never_drawn_together() -> None:
    seen = set()
    for seed in range(300):
        chosen = choose_minority(CFG["minority_labels"], 3, CFG["exclusive_pairs"], np.random.default_rng(seed))
        assert len(set(chosen)) == 3
        assert not {"dock", "ship"} <= set(chosen)
        seen.update(chosen)
    assert {"dock", "ship"} <= seen  # each can be drawn, just not both
    with pytest.raises(ConfigError, match="exclusive pair"):
        choose_minority(["dock", "ship"], 2, [["dock", "ship"]], np.random.default_rng(0))


def _pool_labels(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A 2100-image label matrix; every minority label on >= 60 pool images, dock with ship."""
    rng = np.random.default_rng(seed)
    y = (rng.random((2100, 17)) < 0.08).astype(np.uint8)
    y[:, LABEL_NAMES.index("ship")] |= y[:, LABEL_NAMES.index("dock")]
    pool = np.sort(rng.choice(2100, 1050, replace=False))
    for name in CFG["minority_labels"]:
        y[pool[rng.choice(1050, 70, replace=False)], LABEL_NAMES.index(name)] = 1
    return y, pool


@pytest.mark.parametrize("seed", [0, 1, 2, 5])
def test_scenarios_remove_exactly_20_and_40_per_drawn_label(seed: int) -> None:
    y, pool = _pool_labels(seed)
    sc = build_scenarios(y, LABEL_NAMES, pool, {**CFG, "seed": seed})
    assert sc["1"] == {"minority": [], "removed": {}, "pool": pool.tolist()}
    for key, count in (("2", 20), ("3", 40)):
        s = sc[key]
        assert len(s["minority"]) == 3 and not {"dock", "ship"} <= set(s["minority"])
        removed = [i for name in s["minority"] for i in s["removed"][name]]
        assert len(removed) == len(set(removed)) == 3 * count
        for name in s["minority"]:
            assert len(s["removed"][name]) == count
            assert all(y[i, LABEL_NAMES.index(name)] == 1 for i in s["removed"][name])
        assert set(s["pool"]) == set(pool.tolist()) - set(removed)
    assert sc["2"]["minority"] == sc["3"]["minority"]


def test_scenario_errors_name_the_key() -> None:
    y, pool = _pool_labels()
    with pytest.raises(ConfigError, match="pool holds only"):
        build_scenarios(y, LABEL_NAMES, pool, {**CFG, "remove_per_class": [0, 500]})
    with pytest.raises(ConfigError, match="unknown label 'boat'"):
        build_scenarios(y, LABEL_NAMES, pool, {**CFG, "minority_labels": ["boat"]})
