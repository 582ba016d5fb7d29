"""Honest evaluation: the split buffer (``prepare.split.buffer``), the leakage figures computed
from the window footprints (``rstransfer.data.leakage``), the classes a buffer removes, and how
the report shows them. The buffer guarantees are checked a third way here, by nearest-neighbour
distances between the splits' pixels (a KD-tree), so neither the split nor the leakage module
checks itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.spatial import cKDTree

from rstransfer.core.config import load_config
from rstransfer.data.leakage import buffer_violations, footprint, leakage
from rstransfer.data.prepare import prepare_scene, split_settings
from rstransfer.data.readers import read_ground_truth
from rstransfer.data.scene import Scene
from rstransfer.data.splits import (
    BUFFERS,
    TEST,
    TRAIN,
    UNUSED,
    VAL,
    SplitSettings,
    buffer_distance,
    disjoint_split,
    make_split,
    split_summary,
)
from rstransfer.data.synthetic import synthetic_source, synthetic_target


def settings(**kw: Any) -> SplitSettings:
    base = dict(protocol="disjoint", train=0.3, val=0.1, test=0.6, block_size=16, window=13, seed=0, min_pixels=5)
    return SplitSettings(**{**base, **kw})


def min_distance(split: np.ndarray, a: int, b: int) -> float:
    """Smallest Chebyshev distance between a pixel of split ``a`` and one of split ``b``."""
    pa, pb = np.argwhere(split == a), np.argwhere(split == b)
    if not len(pa) or not len(pb):
        return np.inf
    return float(cKDTree(pa).query(pb, k=1, p=np.inf)[0].min())


def brute_force(split: np.ndarray, window: int) -> dict[str, int]:
    """The figures by enumerating every window (slow; small scenes only)."""
    h, w = split.shape
    half = window // 2

    def cover(code: int) -> np.ndarray:
        out = np.zeros((h, w), dtype=bool)
        for r, c in np.argwhere(split == code):
            out[max(r - half, 0) : r + half + 1, max(c - half, 0) : c + half + 1] = True
        return out

    train, val, test = cover(TRAIN), cover(VAL), cover(TEST)
    tests = np.argwhere(split == TEST)
    holds = sum(
        bool((split[max(r - half, 0) : r + half + 1, max(c - half, 0) : c + half + 1] == TRAIN).any()) for r, c in tests
    )
    sharing = sum(bool(train[max(r - half, 0) : r + half + 1, max(c - half, 0) : c + half + 1].any()) for r, c in tests)
    return {
        "shared_pixels_train_test": int((train & test).sum()),
        "shared_pixels_train_val": int((train & val).sum()),
        "shared_pixels_val_test": int((val & test).sum()),
        "test_pixels_with_train_in_window": holds,
        "test_windows_sharing_pixels_with_train": sharing,
    }


# ------------------------------------------------------------------------------------------
# the leakage figures, from the footprints
# ------------------------------------------------------------------------------------------


def test_windows_share_pixels_without_holding_a_training_centre() -> None:
    """Today's buffer (window // 2) keeps training centres out of test windows, yet the windows
    overlap: a 5x5 training window at column 7 and a test window at column 11 share column 9."""
    split = np.zeros((15, 15), dtype=np.uint8)
    split[7, 7] = TRAIN
    split[7, 11] = TEST  # Chebyshev distance 4 = 2 * (5 // 2): windows touch in one column
    split[7, 12] = TEST  # distance 5 = window: no shared pixel
    split[5, 5] = VAL  # distance 2: its window holds the training centre
    leak = leakage(split, 5)
    assert leak["test_pixels_with_train_in_window"] == 0
    assert leak["test_windows_sharing_pixels_with_train"] == 1
    assert leak["shared_pixels_train_test"] == 5  # column 9, rows 5..9
    assert leak["val_pixels_with_train_in_window"] == 1
    assert leak["shared_pixels_train_val"] == 3 * 3  # rows/cols 5..7 (val window 3..7, training window 5..9)
    assert leak["shared_pixels_val_test"] == 0
    assert (leak["train_pixels"], leak["val_pixels"], leak["test_pixels"]) == (1, 1, 2)
    assert buffer_violations(leak, "centre") == {"val_pixels_with_train_in_window": 1}
    assert buffer_violations(leak, "window") == {"shared_pixels_train_test": 5, "shared_pixels_train_val": 9}
    assert buffer_violations(leak, "none") == {}


@pytest.mark.parametrize("window", [3, 5, 9])
@pytest.mark.parametrize("seed", [0, 1])
def test_figures_equal_an_enumeration_of_every_window(window: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    split = rng.choice([UNUSED, TRAIN, VAL, TEST], size=(23, 19), p=[0.85, 0.05, 0.03, 0.07]).astype(np.uint8)
    leak = leakage(split, window)
    expected = brute_force(split, window)
    assert {k: leak[k] for k in expected} == expected
    assert footprint(split == TRAIN, window).sum() >= (split == TRAIN).sum()


# ------------------------------------------------------------------------------------------
# the buffer
# ------------------------------------------------------------------------------------------


def test_default_buffer_is_no_shared_input_pixel(tiny_config: Path) -> None:
    assert SplitSettings("disjoint", 0.3, 0.1, 0.6, 16, 25, 0, 5).buffer == "window"
    cfg = load_config([tiny_config])
    assert cfg["hsi"]["prepare"]["split"]["buffer"] == "window"
    assert split_settings(cfg, "synthetic_target").buffer == "window"
    assert [buffer_distance(b, 25) for b in BUFFERS] == [25, 13, 1]


@pytest.mark.parametrize("make,window", [(synthetic_source, 13), (synthetic_target, 13), (synthetic_target, 9)])
@pytest.mark.parametrize("buffer", BUFFERS)
def test_buffer_distance_holds_between_every_pair_of_splits(make: Any, window: int, buffer: str) -> None:
    labels = make().labels
    split = disjoint_split(labels, settings(window=window, buffer=buffer))
    d = buffer_distance(buffer, window)
    for a, b in ((TRAIN, VAL), (TRAIN, TEST), (VAL, TEST)):
        assert min_distance(split, a, b) >= d, (a, b)
    leak = leakage(split, window)
    assert buffer_violations(leak, buffer) == {}
    if buffer == "window":  # no input pixel shared, and no window holds another split's centre
        assert leak["test_windows_sharing_pixels_with_train"] == 0 and leak["mean_train_pixels_per_test_window"] == 0
    else:  # the weaker buffers let training and test windows overlap
        assert leak["shared_pixels_train_test"] > 0
    assert np.all(split[labels == 0] == UNUSED)


@pytest.mark.parametrize("make", [synthetic_source, synthetic_target])
def test_the_buffer_costs_pixels_but_every_class_keeps_its_splits(make: Any) -> None:
    scene = make()
    kept = {}
    for buffer in BUFFERS:
        s = settings(buffer=buffer)
        split = make_split(scene.labels, scene.class_names, s, scene.name)  # >= 5 px per class and split
        summary = split_summary(scene.labels, split, scene.class_names, s)
        assert summary["classes_removed"] == []
        assert summary["kept_pixels"] + summary["dropped_pixels"] == summary["labelled_pixels"]
        assert sum(summary["dropped_per_class"]) == summary["dropped_pixels"]
        kept[buffer] = summary["kept_pixels"]
    assert kept["none"] == int((scene.labels > 0).sum())
    assert kept["window"] < kept["none"]


# ------------------------------------------------------------------------------------------
# real ground truth: the drop in labelled pixels (README, protocol section)
# ------------------------------------------------------------------------------------------

# (dataset, window, buffer) -> (labelled pixels kept, classes missing from train, val or test);
# block 16, seed 0, fractions 0.3/0.1/0.6
MEASURED = {
    ("indian_pines", 25, "window"): (5918, 14),
    ("indian_pines", 13, "window"): (6225, 7),
    ("indian_pines", 25, "centre"): (6225, 7),
    ("indian_pines", 13, "centre"): (6943, 5),
    ("salinas", 25, "window"): (25106, 6),
    ("salinas", 13, "window"): (33537, 0),
    ("salinas", 25, "centre"): (33537, 0),
    ("salinas", 13, "centre"): (44719, 0),
}


@pytest.fixture(scope="module")
def ground_truth(shared_data: Path) -> dict[str, tuple[np.ndarray, tuple[str, ...]]]:
    out = {}
    for key in ("indian_pines", "salinas"):
        if not (shared_data / key).is_dir():
            pytest.skip(f"real data not available: {shared_data / key}")
        out[key] = read_ground_truth(key, shared_data / key)
    return out


@pytest.mark.parametrize("dataset,window,buffer", list(MEASURED))
def test_measured_drop_on_real_ground_truth(
    dataset: str, window: int, buffer: str, ground_truth: dict[str, tuple[np.ndarray, tuple[str, ...]]]
) -> None:
    labels, names = ground_truth[dataset]
    s = settings(window=window, buffer=buffer, min_pixels=0)
    split = make_split(labels, names, s, dataset)
    summary = split_summary(labels, split, names, s)
    kept, removed = MEASURED[(dataset, window, buffer)]
    print(f"{dataset} window {window} buffer {buffer}: kept {summary['kept_pixels']}/{summary['labelled_pixels']}, "
          f"removed {[c['name'] for c in summary['classes_removed']]}")
    assert summary["kept_pixels"] == pytest.approx(kept, abs=0.01 * summary["labelled_pixels"])
    assert len(summary["classes_removed"]) == pytest.approx(removed, abs=1)
    d = buffer_distance(buffer, window)
    for a, b in ((TRAIN, VAL), (TRAIN, TEST), (VAL, TEST)):
        assert min_distance(split, a, b) >= d
    assert buffer_violations(leakage(split, window), buffer) == {}


def test_classes_the_buffer_removed_are_named(
    ground_truth: dict[str, tuple[np.ndarray, tuple[str, ...]]], tiny_config: Path, tmp_path: Path
) -> None:
    """Indian Pines at window 25: with min_pixels_per_class 0 prepare keeps going, and the
    summary (hence the report) names every class missing from a split."""
    from rstransfer.studies.hsi.report import leakage_table

    labels, names = ground_truth["indian_pines"]
    cube = np.random.default_rng(0).standard_normal(labels.shape + (16,)).astype(np.float32)
    scene = Scene(name="indian_pines", cube=cube, labels=labels, class_names=names)
    cfg = load_config([tiny_config], {"hsi": {"prepare": {"window": 25, "split": {"min_pixels_per_class": 0}}}})
    summary = prepare_scene(scene, cfg, tmp_path / "ip.h5", origin="indian_pines")
    removed = {c["name"]: c["missing_from"] for c in summary["buffer"]["classes_removed"]}
    assert "Alfalfa" in removed and set(removed["Alfalfa"]) <= {"train", "val", "test"}
    counts = summary["pixels_per_class"]
    for name, splits in removed.items():
        c = names.index(name)
        assert all(counts[k][c] == 0 for k in splits)
    assert summary["leakage"]["shared_pixels_train_test"] == 0
    metrics = {"dataset": "indian_pines", "split": "disjoint", "leakage": summary["leakage"], "buffer": summary["buffer"]}
    row = leakage_table([("source", metrics)]).iloc[0]
    assert "Alfalfa (none in" in row["classes removed by the buffer"]
    assert row["px in train and test windows"] == 0
    assert row["labelled px dropped"].startswith(f"{summary['buffer']['dropped_pixels']} (")


# ------------------------------------------------------------------------------------------
# the report's tables
# ------------------------------------------------------------------------------------------


def test_leakage_table_reports_both_figures_next_to_each_test_set() -> None:
    from rstransfer.studies.hsi.report import leakage_table

    split = np.zeros((15, 15), dtype=np.uint8)
    split[7, 7], split[7, 11], split[0, 14] = TRAIN, TEST, TEST
    leak = leakage(split, 5)
    paper = {"dataset": "ip", "split": "paper", "leakage": leak,
             "buffer": {"buffer": "n/a (per-pixel split)", "dropped_pixels": 0, "labelled_pixels": 3, "classes_removed": []}}
    df = leakage_table([("target", paper)])
    assert list(df.columns) == ["test set", "split", "labelled px dropped", "test px", "px in train and test windows",
                                "test windows with a training centre", "classes removed by the buffer"]
    row = df.iloc[0]
    assert (row["test set"], row["test px"], row["px in train and test windows"]) == ("target: ip", 2, 5)
    assert row["test windows with a training centre"] == "0 (0.0 %)"
    assert row["classes removed by the buffer"] == "none"


def test_environment_table_groups_runs_by_environment() -> None:
    from rstransfer.studies.hsi.report import ENV_ITEMS, environment_table

    env = {"node": "gpu07", "gpu_model": "NVIDIA A100-SXM4-40GB", "tensorflow": "2.18.1", "keras": "tf_keras 2.18.0",
           "horovod": "0.28.1"}
    runs = [("pretrain", {"environment": env, "world_size": 4, "run": {"slurm_nodelist": "gpu07"}}),
            ("Original s0", {"environment": env, "world_size": 4, "run": {"slurm_nodelist": "gpu07"}}),
            ("Network_2 s0", {"environment": {**env, "node": "gpu08"}, "world_size": 1})]
    df = environment_table(runs)
    assert list(df["item"]) == ["runs", *ENV_ITEMS.values()]
    assert list(df.columns) == ["item", "environment 1", "environment 2"]
    col = dict(zip(df["item"], df["environment 1"], strict=True))
    assert col["runs"] == "pretrain, Original s0" and col["GPU"] == "NVIDIA A100-SXM4-40GB"
    assert (col["TensorFlow"], col["Keras"], col["Horovod"], col["ranks"]) == ("2.18.1", "tf_keras 2.18.0", "0.28.1", "4")
    assert dict(zip(df["item"], df["environment 2"], strict=True))["SLURM nodes"] == "local"


def test_training_records_the_environment() -> None:
    import tensorflow as tf

    from rstransfer.studies.hsi.train import environment

    env = environment()
    assert env["tensorflow"] == tf.__version__
    assert env["keras"].split()[0] in ("tf_keras", "keras") and env["horovod"]
    assert env["node"] and env["gpu_model"] and env["python"]
