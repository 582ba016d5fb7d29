"""Your own scene, by declaration alone: a scene stored as a bands x pixels matrix (MATLAB
column-major) with its abundance ground truth, under file and variable names the project has
never seen and a stale band-count variable, runs through the HybridSN study: prepare, pretrain,
fine-tune, evaluate, through the same CLI the rules and jobs call. No code is written for it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io as sio
import yaml

from conftest import cli_env, tiny_settings

pytestmark = pytest.mark.slow


def write_campaign(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """The synthetic target scene as an unmixing benchmark ships it: reflectance (bands, pixels),
    column-major pixels, rows/cols and a stale band count in variables, abundances (k, pixels)."""
    from rstransfer.data.synthetic import synthetic_target

    scene = synthetic_target(size=72)
    h, w, b = scene.cube.shape
    k = len(scene.class_names)
    refl = scene.cube.reshape(h * w, b, order="F").T.astype(np.float64)  # bands x pixels, MATLAB order
    onehot = np.zeros((k, h * w))
    flat = scene.labels.reshape(-1, order="F")
    labelled = flat > 0
    onehot[flat[labelled] - 1, np.nonzero(labelled)[0]] = 0.9
    onehot[:, labelled] += 0.1 / k
    onehot[:, ~labelled] = 1.0 / k  # mixed pixels: no class above the purity threshold
    folder.mkdir(parents=True)
    sio.savemat(folder / "flightline_07_refl.mat",
                {"R_flight": refl, "lines": float(h), "samples": float(w), "nbands_raw": 224.0})
    sio.savemat(folder / "flightline_07_fractions.mat",
                {"F": onehot, "materials": np.array(list(scene.class_names), dtype=object)})
    return scene.cube, scene.labels


def test_bands_pixels_scene_with_abundances_runs_through_the_hsi_study(tmp_path: Path) -> None:
    cube, labels = write_campaign(tmp_path / "campaign")
    declaration = {
        "reader": "mat",
        "path": str(tmp_path / "campaign"),
        "options": {
            "cube": {"file": "flightline_07_refl.mat", "variable": "R_flight", "layout": "bands_pixels",
                     "pixel_order": "column", "rows": "lines", "cols": "samples", "band_count": "nbands_raw"},
            "labels": {"file": "flightline_07_fractions.mat", "variable": "F", "kind": "abundances",
                       "purity": 0.5, "names_variable": "materials"},
        },
    }
    cfg = tiny_settings(tmp_path / "results", {
        "datasets": {"campaign": declaration},
        "hsi": {"target": "campaign", "policies": ["Network_2"], "seeds": [0]},
    })
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "rstransfer.cli", *args, "--config", str(config)],
                              env=cli_env(), capture_output=True, text=True, cwd=tmp_path, timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc

    inspected = cli("inspect", "campaign")
    assert "72 rows x 72 cols x 80 bands" in inspected.stdout
    assert "224" in inspected.stdout and "WARNING" in inspected.stdout  # the stale band count, named
    cli("prepare", "--study", "hsi", "--all")
    from rstransfer.data.prepare import load_prepared

    prepared = load_prepared(tmp_path / "results/hsi/prepare/campaign/prepared.h5")
    np.testing.assert_array_equal(prepared.labels, labels)  # the declared scene, pixel for pixel
    assert prepared.cube.shape[:2] == cube.shape[:2]
    cli("pretrain", "--study", "hsi", "--all")
    cli("finetune", "--study", "hsi", "--run", "Network_2/seed0")
    out = cli("evaluate", "--study", "hsi", "--run", "Network_2/seed0").stdout
    assert "evaluated Network_2 seed 0" in out
    metrics = json.loads((tmp_path / "results/hsi/evaluate/Network_2/seed0/metrics.json").read_text())
    assert metrics["dataset"] == "campaign" and 0 < metrics["OA"] <= 1
    assert metrics["class_names"] == [str(n) for n in metrics["class_names"]] and len(metrics["class_names"]) == 4
