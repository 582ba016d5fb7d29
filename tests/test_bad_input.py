"""Bad input through the CLI: ``rstransfer prepare`` on files written in the real Salinas-A
layout, broken one way at a time. Each must exit 2 with one line ``rstransfer: error: ...``
naming the file or key to fix, and leave neither the output nor a temporary file behind."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import scipy.io as sio

from rstransfer.data.readers import SALINAS_A_IDS

CUBE, GT = "SalinasA_corrected.mat", "SalinasA_gt.mat"
H, W, BANDS = 30, 30, 20


def good_arrays(bands: int = BANDS) -> tuple[np.ndarray, np.ndarray]:
    """A 30x30 int16 cube and a GT map with the Salinas ids, one 5-row stripe per class."""
    rng = np.random.default_rng(0)
    gt = np.zeros((H, W), dtype=np.uint8)
    for k, class_id in enumerate(SALINAS_A_IDS):
        gt[5 * k : 5 * k + 5, 2:] = class_id  # columns 0-1 stay unlabelled
    signal = np.repeat(gt[:, :, None].astype(np.float64), bands, axis=2) * np.linspace(10, 40, bands)
    cube = (1000 + signal + rng.normal(0, 20, (H, W, bands))).astype(np.int16)
    return cube, gt


def write_scene(folder: Path, cube: np.ndarray | None, gt: np.ndarray | None, **extra_vars: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if cube is not None:
        sio.savemat(folder / CUBE, {"salinasA_corrected": cube, **extra_vars})
    if gt is not None:
        sio.savemat(folder / GT, {"salinasA_gt": gt})
    return folder


@pytest.fixture
def prepare_bad(
    tmp_path: Path, write_config: Callable[..., Path], run_cli: Callable[..., tuple[int, str, str]]
) -> Callable[..., tuple[int, str, str, Path]]:
    """``prepare_bad(**prepare_overrides)`` runs ``rstransfer prepare --dataset bad`` on
    ``tmp_path/salinas_a`` and returns (rc, stdout, stderr, out file)."""

    def run(**prepare: Any) -> tuple[int, str, str, Path]:
        cfg = write_config(
            {
                "datasets": {"bad": {"reader": "salinas_a", "path": str(tmp_path / "salinas_a")}},
                "hsi": {
                    "target": "bad",
                    "prepare": {"pca_components": 13, "window": 9, "split": {"protocol": "paper"}, **prepare},
                },
            }
        )
        out_dir = tmp_path / "out"
        out_dir.mkdir(exist_ok=True)
        out = out_dir / "bad"
        rc, stdout, stderr = run_cli("prepare", "--study", "hsi", "--config", cfg, "--run", "bad", "--out", out)
        return rc, stdout, stderr, out

    return run


def assert_clean_failure(result: tuple[int, str, str, Path], *words: str) -> str:
    rc, stdout, stderr, out = result
    assert rc == 2, (stdout, stderr)
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    line = lines[0]
    assert line.startswith("rstransfer: error: ")
    for word in words:
        assert word in line, line
    assert not out.exists()
    assert sorted(p.name for p in out.parent.iterdir()) == []  # no temp files either
    return line


def test_valid_files_prepare_cleanly(tmp_path: Path, prepare_bad: Callable[..., Any]) -> None:
    """The control case: the same layout, unbroken, is prepared."""
    write_scene(tmp_path / "salinas_a", *good_arrays())
    rc, stdout, stderr, out = prepare_bad()
    assert rc == 0, stderr
    assert "prepared bad: [30, 30, 20]" in stdout
    with h5py.File(out / "prepared.h5", "r") as f:
        assert f["cube"].shape == (H, W, 13)
        labels = f["labels"][...]
    assert sorted(np.unique(labels).tolist()) == list(range(7))  # Salinas ids remapped to 1..6
    assert sorted(p.name for p in out.parent.iterdir()) == ["bad"]
    assert sorted(p.name for p in out.iterdir()) == ["prepared.h5"]


def test_truncated_mat_file(tmp_path: Path, prepare_bad: Callable[..., Any]) -> None:
    folder = write_scene(tmp_path / "salinas_a", *good_arrays())
    data = (folder / CUBE).read_bytes()
    (folder / CUBE).write_bytes(data[: len(data) // 2])
    assert_clean_failure(prepare_bad(), CUBE, "truncated or corrupt")


def test_not_a_mat_file(tmp_path: Path, prepare_bad: Callable[..., Any]) -> None:
    folder = write_scene(tmp_path / "salinas_a", *good_arrays())
    (folder / GT).write_text("this is not a MATLAB file\n")
    assert_clean_failure(prepare_bad(), GT)


def test_cube_and_ground_truth_shapes_differ(tmp_path: Path, prepare_bad: Callable[..., Any]) -> None:
    cube, gt = good_arrays()
    write_scene(tmp_path / "salinas_a", cube, gt[:, :-1])
    assert_clean_failure(prepare_bad(), CUBE, "shape mismatch", "30x30", "30x29")


def test_nan_in_a_band(tmp_path: Path, prepare_bad: Callable[..., Any]) -> None:
    cube, gt = good_arrays()
    cube = cube.astype(np.float32)
    cube[3, 4, 7] = np.nan
    write_scene(tmp_path / "salinas_a", cube, gt)
    assert_clean_failure(prepare_bad(), CUBE, "NaN", "bands [7]")


def test_class_too_small_for_the_split(tmp_path: Path, prepare_bad: Callable[..., Any]) -> None:
    cube, gt = good_arrays()
    gt[gt == 14] = 0
    gt[29, 10:13] = 14  # Lettuce_romaine_7wk keeps 3 px
    write_scene(tmp_path / "salinas_a", cube, gt)
    assert_clean_failure(
        prepare_bad(), "bad:", "class 6 'Lettuce_romaine_7wk' (3 px)", "prepare.split.min_pixels_per_class"
    )


def test_more_components_than_bands(tmp_path: Path, prepare_bad: Callable[..., Any]) -> None:
    write_scene(tmp_path / "salinas_a", *good_arrays(bands=10))
    assert_clean_failure(prepare_bad(), "prepare.pca_components", "only 10 bands")


def test_missing_file(tmp_path: Path, prepare_bad: Callable[..., Any]) -> None:
    _, gt = good_arrays()
    write_scene(tmp_path / "salinas_a", None, gt)
    line = assert_clean_failure(prepare_bad(), CUBE, "datasets.bad.path", str(tmp_path / "salinas_a"))
    assert "salinasA_corrected" in line  # the variable it should hold


def test_missing_folder(tmp_path: Path, prepare_bad: Callable[..., Any]) -> None:
    assert_clean_failure(prepare_bad(), "datasets.bad.path", "does not exist", CUBE, GT)


def test_label_outside_the_class_list(tmp_path: Path, prepare_bad: Callable[..., Any]) -> None:
    cube, gt = good_arrays()
    gt[0, 5] = 5  # not a Salinas-A id
    write_scene(tmp_path / "salinas_a", cube, gt)
    assert_clean_failure(prepare_bad(), GT, "label(s) [5] outside the class list")


def test_wrong_variable(tmp_path: Path, prepare_bad: Callable[..., Any]) -> None:
    cube, gt = good_arrays()
    folder = tmp_path / "salinas_a"
    folder.mkdir()
    sio.savemat(folder / CUBE, {"something_else": cube.reshape(H * W, BANDS)})
    sio.savemat(folder / GT, {"salinasA_gt": gt})
    assert_clean_failure(prepare_bad(), CUBE, "'salinasA_corrected'", "something_else")


def test_unknown_dataset_key(tmp_path: Path, write_config: Callable[..., Path], run_cli: Callable[..., Any]) -> None:
    cfg = write_config()
    out = tmp_path / "x"
    rc, stdout, stderr = run_cli("prepare", "--study", "hsi", "--config", cfg, "--run", "nope", "--out", out)
    assert rc == 2 and stdout == ""
    assert len(stderr.splitlines()) == 1
    assert stderr.startswith("rstransfer: error: --run: 'nope' is not a run of hsi prepare in this config")
    assert "synthetic_source" in stderr  # lists the declared ones
    assert not out.exists()
