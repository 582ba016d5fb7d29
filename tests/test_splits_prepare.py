"""Splits (buffer guarantees, coverage, determinism, class checks), prepare (reduction fitted on
training pixels only, the HDF5 it writes), the paper set-up config, and patch serving (tf.data
windows vs. the reference loop). The leakage figures themselves: test_leakage.py."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from rstransfer.core.config import load_config
from rstransfer.data.leakage import leakage
from rstransfer.data.patches import patch_dataset, reference_patches
from rstransfer.data.prepare import apply_reduction, load_prepared, prepare_scene, split_settings
from rstransfer.data.readers import dataset_files, read_ground_truth
from rstransfer.data.scene import Scene
from rstransfer.data.splits import (
    SPLITS,
    TEST,
    TRAIN,
    UNUSED,
    VAL,
    SplitSettings,
    disjoint_split,
    make_split,
    paper_split,
)
from rstransfer.data.synthetic import synthetic_source, synthetic_target
from rstransfer.core.errors import ConfigError, DataFormatError


def settings(**kw: Any) -> SplitSettings:
    base = dict(protocol="disjoint", train=0.3, val=0.1, test=0.6, block_size=16, window=13, seed=0, min_pixels=5)
    base.update(kw)
    return SplitSettings(**base)


@pytest.fixture(scope="module")
def source_scene() -> Scene:
    return synthetic_source()


@pytest.fixture(scope="module")
def target_scene() -> Scene:
    return synthetic_target()


@pytest.fixture(scope="module")
def indian_pines_gt(shared_data: Path) -> tuple[np.ndarray, tuple[str, ...]]:
    root = shared_data / "indian_pines"
    if not (root / "Indian_pines_gt.mat").is_file():
        pytest.skip(f"real data not available: {root / 'Indian_pines_gt.mat'}")
    return read_ground_truth("indian_pines", root)


@pytest.fixture
def cfg(tiny_config: Path) -> dict[str, Any]:
    return load_config([tiny_config])


# ------------------------------------------------------------------------------------------
# leakage and split protocols
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scene_name", ["source", "target"])
@pytest.mark.parametrize("window,block_size", [(13, 16), (9, 16), (25, 32)])
def test_disjoint_split_has_no_leakage_on_synthetic_scenes(
    scene_name: str, window: int, block_size: int, source_scene: Scene, target_scene: Scene
) -> None:
    """The default buffer: no pixel inside a training window is inside a val or test window."""
    scene = source_scene if scene_name == "source" else target_scene
    split = disjoint_split(scene.labels, settings(window=window, block_size=block_size))
    leak = leakage(split, window)
    assert leak["test_pixels"] > 100 and leak["train_pixels"] > 100 and leak["val_pixels"] > 100
    assert leak["test_pixels_with_train_in_window"] == 0
    assert leak["val_pixels_with_train_in_window"] == 0
    assert leak["mean_train_pixels_per_test_window"] == 0.0
    assert leak["shared_pixels_train_test"] == leak["shared_pixels_train_val"] == leak["shared_pixels_val_test"] == 0
    assert leak["test_windows_sharing_pixels_with_train"] == 0


@pytest.mark.parametrize("scene_name", ["source", "target"])
def test_default_disjoint_split_passes_the_class_checks(scene_name: str, source_scene: Scene, target_scene: Scene) -> None:
    """The demo settings (window 13, 16 px blocks) give every class >= 5 px in each split."""
    scene = source_scene if scene_name == "source" else target_scene
    s = settings()
    split = make_split(scene.labels, scene.class_names, s, scene.name)
    for c in range(1, scene.n_classes + 1):
        for k in (TRAIN, VAL, TEST):
            assert ((split == k) & (scene.labels == c)).sum() >= s.min_pixels
    assert leakage(split, s.window)["test_pixels_with_train_in_window"] == 0


@pytest.mark.parametrize("protocol", sorted(SPLITS))
def test_split_codes_cover_only_labelled_pixels(protocol: str, source_scene: Scene) -> None:
    labels = source_scene.labels
    split = make_split(labels, source_scene.class_names, settings(protocol=protocol), "source")
    assert split.shape == labels.shape
    assert split.dtype == np.uint8
    assert set(np.unique(split).tolist()) <= {UNUSED, TRAIN, VAL, TEST}
    assert np.all(split[labels == 0] == UNUSED)
    # one code per pixel: train, val and test are disjoint by construction and each non-empty
    sizes = [int((split == k).sum()) for k in (TRAIN, VAL, TEST)]
    assert all(n > 0 for n in sizes)
    assert sum(sizes) <= int((labels > 0).sum())


def test_paper_split_uses_every_labelled_pixel_in_the_configured_fractions(source_scene: Scene) -> None:
    labels = source_scene.labels
    split = paper_split(labels, settings(protocol="paper"))
    assert np.all(split[labels > 0] != UNUSED)
    for c in range(1, source_scene.n_classes + 1):
        n = int((labels == c).sum())
        n_train = int(((split == TRAIN) & (labels == c)).sum())
        n_val = int(((split == VAL) & (labels == c)).sum())
        assert abs(n_train - 0.3 * n) <= 1
        assert abs(n_val - 0.1 * n) <= 1


@pytest.mark.parametrize("protocol", sorted(SPLITS))
def test_split_is_deterministic_for_a_seed(protocol: str, target_scene: Scene) -> None:
    labels, names = target_scene.labels, target_scene.class_names
    a = make_split(labels, names, settings(protocol=protocol, seed=3), "t")
    b = make_split(labels, names, settings(protocol=protocol, seed=3), "t")
    np.testing.assert_array_equal(a, b)
    c = SPLITS[protocol](labels, settings(protocol=protocol, seed=4))
    assert not np.array_equal(a, c)


def test_too_small_class_raises_naming_the_class() -> None:
    labels = np.ones((20, 20), dtype=np.int32)
    labels[0, :3] = 2  # 3 px: cannot give >= 5 to train, val and test
    with pytest.raises(DataFormatError, match=r"class 2 'Tiny' \(3 px\).*min_pixels_per_class") as info:
        make_split(labels, ("Big", "Tiny"), settings(protocol="paper"), "scene_x")
    assert str(info.value).startswith("scene_x: ")


def test_absent_class_raises_naming_the_class() -> None:
    labels = np.ones((20, 20), dtype=np.int32)
    with pytest.raises(DataFormatError, match=r"class 2 'Missing' \(0 px\)"):
        make_split(labels, ("Big", "Missing"), settings(protocol="paper", min_pixels=1), "scene_x")


# ------------------------------------------------------------------------------------------
# real ground truth: Indian Pines
# ------------------------------------------------------------------------------------------


def test_paper_split_leaks_on_indian_pines(indian_pines_gt: tuple[np.ndarray, tuple[str, ...]]) -> None:
    """HybridSN's 30 % random split: every test window holds ~120 training pixels."""
    labels, names = indian_pines_gt
    assert labels.shape == (145, 145) and int((labels > 0).sum()) == 10249
    s = settings(protocol="paper", window=25, min_pixels=1)
    split = make_split(labels, names, s, "indian_pines")
    leak = leakage(split, 25)
    assert leak["test_pixels"] > 5000
    assert leak["test_pixels_with_train_in_window"] > 0.9 * leak["test_pixels"]
    assert leak["mean_train_pixels_per_test_window"] > 50


@pytest.mark.parametrize("buffer", ["window", "centre"])
@pytest.mark.parametrize("block_size,seed", [(8, 0), (16, 0), (16, 1), (25, 2)])
def test_disjoint_split_has_no_leakage_on_indian_pines(
    buffer: str, block_size: int, seed: int, indian_pines_gt: tuple[np.ndarray, tuple[str, ...]]
) -> None:
    labels, _ = indian_pines_gt
    split = disjoint_split(labels, settings(window=25, block_size=block_size, seed=seed, buffer=buffer))
    leak = leakage(split, 25)
    assert leak["test_pixels"] > 100 and leak["train_pixels"] > 500
    assert leak["test_pixels_with_train_in_window"] == 0
    assert leak["val_pixels_with_train_in_window"] == 0
    shared = (leak["shared_pixels_train_test"], leak["shared_pixels_train_val"], leak["shared_pixels_val_test"])
    assert shared == (0, 0, 0) if buffer == "window" else leak["shared_pixels_train_test"] > 0
    assert np.all(split[labels == 0] == UNUSED)


def test_disjoint_split_on_indian_pines_names_the_class_it_cannot_split(
    indian_pines_gt: tuple[np.ndarray, tuple[str, ...]],
) -> None:
    """Alfalfa is one 11x7 px field: a 25 px buffer cannot leave it in train and test at once,
    so the default settings must fail loudly, naming the class and the keys to change."""
    labels, names = indian_pines_gt
    with pytest.raises(
        DataFormatError, match=r"class 1 'Alfalfa' \(46 px\).*hsi\.prepare\.split\.block_size, hsi\.prepare\.split\.buffer"
    ):
        make_split(labels, names, settings(window=25), "indian_pines")
    # min_pixels_per_class 0 keeps going (the classes the buffer removed are named: test_leakage.py)
    split = make_split(labels, names, settings(window=25, min_pixels=0), "indian_pines")
    assert (split == TEST).any()


# ------------------------------------------------------------------------------------------
# prepare: reduction fitted on training pixels only, the HDF5 file
# ------------------------------------------------------------------------------------------


def _read_params(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {k: f[k][...] for k in ("scaler_mean", "scaler_scale", "pca_components", "split")}


def test_reduction_is_fitted_on_training_pixels_only(tmp_path: Path, cfg: dict[str, Any]) -> None:
    scene = synthetic_target(size=72)
    first = prepare_scene(scene, cfg, tmp_path / "a.h5", origin="t")
    params = _read_params(tmp_path / "a.h5")
    split = params["split"]
    assert (split == TRAIN).sum() > 500 and (split == TEST).sum() > 500

    held_out = split != TRAIN  # test, val, unlabelled and buffer pixels
    cube = scene.cube.copy()
    cube[held_out] = cube[held_out] * 25.0 + 5000.0
    second = prepare_scene(replace(scene, cube=cube), cfg, tmp_path / "b.h5", origin="t")
    changed_elsewhere = _read_params(tmp_path / "b.h5")
    for key in ("scaler_mean", "scaler_scale", "pca_components", "split"):
        np.testing.assert_array_equal(changed_elsewhere[key], params[key], err_msg=key)
    assert second["pca_explained_variance"] == first["pca_explained_variance"]

    r, c = np.argwhere(split == TRAIN)[0]
    cube = scene.cube.copy()
    cube[r, c] += 5000.0
    prepare_scene(replace(scene, cube=cube), cfg, tmp_path / "c.h5", origin="t")
    changed_train = _read_params(tmp_path / "c.h5")
    assert not np.allclose(changed_train["scaler_mean"], params["scaler_mean"])
    assert not np.allclose(np.abs(changed_train["pca_components"]), np.abs(params["pca_components"]))


def test_prepared_hdf5_contents(tmp_path: Path, cfg: dict[str, Any]) -> None:
    scene = synthetic_target(size=72)
    out = tmp_path / "prep" / "synthetic_target.h5"
    summary = prepare_scene(scene, cfg, out, origin="synthetic_target")
    k, b = cfg["hsi"]["prepare"]["pca_components"], scene.n_bands
    assert (k, b) == (13, 80)
    with h5py.File(out, "r") as f:
        assert f.attrs["format"] == "rstransfer.prepared/1"
        assert int(f.attrs["window"]) == 9
        cube, labels, split = f["cube"][...], f["labels"][...], f["split"][...]
        params = {key: f[key][...] for key in ("scaler_mean", "scaler_scale", "pca_components", "pca_explained_variance_ratio")}
        stored = json.loads(f.attrs["summary"])
        assert "patches" not in f  # windows are cut lazily, never stored
    assert cube.shape == (72, 72, 13) and cube.dtype == np.float32
    assert labels.dtype == np.int32
    np.testing.assert_array_equal(labels, scene.labels)
    assert split.shape == (72, 72) and split.dtype == np.uint8
    assert set(np.unique(split).tolist()) <= {UNUSED, TRAIN, VAL, TEST}
    assert params["scaler_mean"].shape == (b,) and params["scaler_scale"].shape == (b,)
    assert params["pca_components"].shape == (k, b)
    # orthonormal components, explained variance descending and at most 1 in total
    np.testing.assert_allclose(params["pca_components"] @ params["pca_components"].T, np.eye(k), atol=1e-4)
    ratio = params["pca_explained_variance_ratio"]
    assert np.all(np.diff(ratio) <= 1e-7) and 0 < ratio.sum() <= 1.0 + 1e-6
    # the stored cube is the reduction of the original cube
    np.testing.assert_allclose(cube, apply_reduction(scene.cube, params), rtol=1e-5, atol=1e-4)
    # on training pixels the components are centred (scaler and PCA fitted there)
    np.testing.assert_allclose(cube[split == TRAIN].mean(axis=0), 0.0, atol=1e-3)

    assert stored == json.loads(json.dumps(summary))
    assert stored["shape"] == [72, 72, 80]
    assert stored["class_names"] == list(scene.class_names)
    assert stored["leakage"]["test_pixels_with_train_in_window"] == 0
    assert stored["leakage"]["test_pixels"] == int((split == TEST).sum())
    for name, code in (("train", TRAIN), ("val", VAL), ("test", TEST)):
        assert stored["pixels_per_class"][name] == [int(((split == code) & (labels == c)).sum()) for c in range(1, 5)]

    prepared = load_prepared(out)
    assert prepared.n_classes == 4 and prepared.window == 9
    rows, cols, y = prepared.pixels(TRAIN)
    assert len(rows) == int((split == TRAIN).sum())
    np.testing.assert_array_equal(y, labels[rows, cols] - 1)
    assert y.min() >= 0 and y.max() == 3
    assert sorted(p.name for p in out.parent.iterdir()) == ["synthetic_target.h5"]  # no temp files left


def test_more_components_than_bands_is_a_config_error(tmp_path: Path, cfg: dict[str, Any]) -> None:
    scene = synthetic_target(size=72)
    narrow = replace(scene, cube=np.ascontiguousarray(scene.cube[..., :10]))
    out = tmp_path / "narrow.h5"
    with pytest.raises(ConfigError, match=r"prepare\.pca_components: 13 components .* only 10 bands"):
        prepare_scene(narrow, cfg, out, origin="narrow")
    assert not out.exists()
    assert list(tmp_path.glob("*.h5*")) == []


def test_load_prepared_rejects_other_files(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="prepared file missing"):
        load_prepared(tmp_path / "nope.h5")
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(DataFormatError, match="not a prepared rstransfer file"):
        load_prepared(other)


# ------------------------------------------------------------------------------------------
# the paper set-up: Indian Pines -> Urban (config/paper_ip_to_urban.yaml)
# ------------------------------------------------------------------------------------------


def paper_config(repo_root: Path, **overrides: Any) -> dict[str, Any]:
    return load_config([repo_root / "config.yaml", repo_root / "config" / "paper_ip_to_urban.yaml"], overrides)


def test_paper_config_has_the_papers_settings(repo_root: Path) -> None:
    cfg = paper_config(repo_root)
    hsi = cfg["hsi"]
    assert (hsi["source"], hsi["target"]) == ("indian_pines", "urban")
    assert (hsi["prepare"]["pca_components"], hsi["prepare"]["window"]) == (30, 25)
    pre, fine = hsi["train"]["pretrain"], hsi["train"]["finetune"]
    assert (pre["learning_rate"], pre["batch_size"], pre["epochs"]) == (0.01, 256, 6700)
    assert (fine["learning_rate"], fine["batch_size"], fine["epochs"]) == (0.01, 256, 100)
    assert pre["patience"] >= pre["epochs"] and fine["patience"] >= fine["epochs"]  # the paper's fixed epochs
    assert hsi["policies"] == ["Original"] + [f"Network_{i}" for i in range(1, 8)]
    assert hsi["report"]["source_reference"] == {
        "label": "paper (Indian Pines, random 30 % split)", "OA": 99.84, "Kappa": 98.49, "AA": 98.12
    }
    from rstransfer.studies.hsi.report import source_table

    src, pre = {"dataset": "indian_pines", "n_test": 6150, "OA": 0.5, "Kappa": 0.25, "AA": 0.4}, {"epochs_run": 7}
    table = source_table(src, pre, hsi["report"]["source_reference"])
    assert list(table["model"]) == ["pre-trained on indian_pines (7 epochs)", "paper (Indian Pines, random 30 % split)"]
    assert list(table["OA (%)"]) == ["50.00", "99.84"] and list(table["AA (%)"]) == ["40.00", "98.12"]
    assert len(source_table(src, pre, load_config([repo_root / "config.yaml"])["hsi"]["report"]["source_reference"])) == 1
    # pre-training epochs are a config value
    assert paper_config(repo_root, hsi={"train": {"pretrain": {"epochs": 50}}})["hsi"]["train"]["pretrain"]["epochs"] == 50
    # the paper's own split, so that the source figure compares with the paper's (leakage reported)
    assert split_settings(cfg, "indian_pines").protocol == split_settings(cfg, "urban").protocol == "paper"
    files = {p.name for key in ("indian_pines", "urban") for p in dataset_files(key, cfg["datasets"][key], repo_root)}
    assert files == {"Indian_pines_corrected.mat", "Indian_pines_gt.mat", "Urban_R162.mat", "end4_groundTruth.mat"}


def test_paper_config_prepares_both_scenes_to_one_input_shape(repo_root: Path, shared_data: Path, tmp_path: Path) -> None:
    """Runnable once the cubes are there: fixture cubes in the published layouts (random spectra,
    the real label files), prepared by the paper config to equal HybridSN inputs (25x25x30)."""
    import shutil

    from scipy.io import savemat

    from rstransfer.core.paths import Layout
    from rstransfer.core.study import run_step
    from rstransfer.studies import get_study

    for name in ("indian_pines/Indian_pines_gt.mat", "urban/end4_groundTruth.mat"):
        if not (shared_data / name).is_file():
            pytest.skip(f"real data not available: {shared_data / name}")
        (tmp_path / "data" / Path(name).parent).mkdir(parents=True, exist_ok=True)
        shutil.copy(shared_data / name, tmp_path / "data" / name)
    rng = np.random.default_rng(0)
    savemat(tmp_path / "data/indian_pines/Indian_pines_corrected.mat",
            {"indian_pines_corrected": rng.integers(1000, 9000, (145, 145, 200)).astype(np.uint16)})
    savemat(tmp_path / "data/urban/Urban_R162.mat",
            {"Y": rng.random((162, 307 * 307), dtype=np.float32), "nRow": 307, "nCol": 307, "nBand": 162})
    cfg = paper_config(repo_root, data_root=str(tmp_path / "data"), results=str(tmp_path / "results"))
    study, layout = get_study("hsi"), Layout.from_config(cfg)
    shapes = {}
    for run in study.runs(cfg, "prepare"):
        summary = run_step(cfg, study, "prepare", run, layout)
        prepared = load_prepared(Path(layout.run_dir("hsi", "prepare", run["dataset"])) / "prepared.h5")
        shapes[run["dataset"]] = (prepared.window, prepared.cube.shape[-1])
        assert summary["split"]["protocol"] == "paper"
        leak = summary["leakage"]
        assert leak["test_pixels_with_train_in_window"] > 0.9 * leak["test_pixels"]  # the paper split leaks
    assert shapes == {"indian_pines": (25, 30), "urban": (25, 30)}


# ------------------------------------------------------------------------------------------
# patch serving
# ------------------------------------------------------------------------------------------


def _collect(ds: Any) -> tuple[np.ndarray, np.ndarray | None]:
    xs, ys = [], []
    for batch in ds:
        if isinstance(batch, tuple):
            xs.append(batch[0].numpy())
            ys.append(batch[1].numpy())
        else:
            xs.append(batch.numpy())
    return np.concatenate(xs), (np.concatenate(ys) if ys else None)


def _naive_window(cube: np.ndarray, r: int, c: int, window: int) -> np.ndarray:
    h, w, k = cube.shape
    half = window // 2
    out = np.zeros((window, window, k), dtype=cube.dtype)
    for i in range(window):
        for j in range(window):
            rr, cc = r + i - half, c + j - half
            if 0 <= rr < h and 0 <= cc < w:
                out[i, j] = cube[rr, cc]
    return out


@pytest.fixture(scope="module")
def small_cube() -> np.ndarray:
    return np.random.default_rng(7).standard_normal((11, 8, 5)).astype(np.float32) + 3.0  # no zeros inside


def test_patch_batches_equal_the_reference_windows(small_cube: np.ndarray) -> None:
    h, w, k = small_cube.shape
    rows, cols = np.divmod(np.arange(h * w), w)  # every pixel, borders and corners included
    labels = (np.arange(h * w) % 3).astype(np.int32)
    ds = patch_dataset(small_cube, rows, cols, labels, 5, 7)  # 88 px: last batch partial
    batch_shapes = [tuple(x.shape) for x, _ in ds]
    assert batch_shapes[0] == (7, 5, 5, k, 1) and batch_shapes[-1] == (88 % 7, 5, 5, k, 1)
    x, y = _collect(ds)
    assert x.shape == (h * w, 5, 5, k, 1) and x.dtype == np.float32
    np.testing.assert_array_equal(y, labels)
    ref = reference_patches(small_cube, rows, cols, 5)
    np.testing.assert_array_equal(x[..., 0], ref)
    for i in (0, w - 1, (h - 1) * w, h * w - 1, 3 * w + 4):
        np.testing.assert_array_equal(x[i, ..., 0], _naive_window(small_cube, rows[i], cols[i], 5))
    # zero padding outside the scene; the centre is the pixel itself
    corner = x[0, ..., 0]
    assert np.all(corner[:2] == 0) and np.all(corner[:, :2] == 0) and np.all(corner[2:, 2:] != 0)
    np.testing.assert_array_equal(x[:, 2, 2, :, 0], small_cube[rows, cols])


def test_patch_dataset_without_labels_and_a_window_wider_than_the_scene(small_cube: np.ndarray) -> None:
    rows, cols = np.array([0, 10, 5]), np.array([7, 0, 3])
    x, y = _collect(patch_dataset(small_cube, rows, cols, None, 13, 2))
    assert y is None and x.shape == (3, 13, 13, 5, 1)
    np.testing.assert_array_equal(x[..., 0], reference_patches(small_cube, rows, cols, 13))
    for i in range(3):
        np.testing.assert_array_equal(x[i, ..., 0], _naive_window(small_cube, rows[i], cols[i], 13))


@pytest.mark.parametrize("shuffle", [False, True])
def test_sharding_splits_indices_disjointly_and_completely(small_cube: np.ndarray, shuffle: bool) -> None:
    h, w, _ = small_cube.shape
    rows, cols = np.divmod(np.arange(h * w), w)
    ids = np.arange(h * w, dtype=np.int32)  # label = pixel index, to trace where each went
    seen = []
    for rank in (0, 1):
        x, y = _collect(patch_dataset(small_cube, rows, cols, ids, 3, 8, shuffle=shuffle, seed=5, shard=(2, rank)))
        assert len(y) == len(set(y.tolist()))  # no pixel twice on one rank
        assert set((y % 2).tolist()) == {rank}  # every size-th index starting at rank
        np.testing.assert_array_equal(x[:, 1, 1, :, 0], small_cube[rows[y], cols[y]])  # patch follows its label
        seen.append(set(y.tolist()))
    assert seen[0].isdisjoint(seen[1])
    assert seen[0] | seen[1] == set(ids.tolist())
    assert len(seen[0]) == 44 and len(seen[1]) == 44


def test_shuffle_is_seeded_and_keeps_every_pixel(small_cube: np.ndarray) -> None:
    h, w, _ = small_cube.shape
    rows, cols = np.divmod(np.arange(h * w), w)
    ids = np.arange(h * w, dtype=np.int32)
    _, a = _collect(patch_dataset(small_cube, rows, cols, ids, 3, 16, shuffle=True, seed=1))
    _, b = _collect(patch_dataset(small_cube, rows, cols, ids, 3, 16, shuffle=True, seed=1))
    np.testing.assert_array_equal(a, b)
    assert sorted(a.tolist()) == ids.tolist()
    assert not np.array_equal(a, ids)
