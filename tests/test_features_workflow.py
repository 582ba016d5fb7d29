"""features study end to end on the embedded defaults (generated scene set + the HSI study's
synthetic target): every step through run_step, the pixel-wise side on the HSI study's own
prepared scene, split and pretrained HybridSN, the report with the policy rows beside the
baselines. Asserts widths, the HSI split reuse, and that no test pixel reaches any fitting."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import pytest

from conftest import tiny_settings
from rstransfer.core.config import validate
from rstransfer.core.paths import Layout
from rstransfer.core.study import run_step
from rstransfer.data.splits import TEST, TRAIN, VAL
from rstransfer.studies import get_study
from rstransfer.studies.features.extract import read_features
from rstransfer.models.densenet import feature_dim

SECTION = {
    "enabled": True, "datasets": ["synthetic", "hsi"], "tasks": ["single", "multi"], "seeds": [0, 1],
    "synthetic": {"per_class": 5, "size": 32}, "image_size": 32, "backbone": {"blocks": [1, 1], "seed": 0},
    "extractors": ["random", "rgb", "histogram", "spectra", "hybridsn"], "rgb_size": 4, "histogram_bins": 8,
    "classifiers": ["rbf_svm", "random_forest"],
    "grids": {"linear_svm": {"C": [0.1]}, "rbf_svm": {"C": [10.0], "gamma": ["scale"]},
              "random_forest": {"n_estimators": [20], "max_depth": [None], "max_features": ["sqrt"]}},
}


def run_all(cfg: dict[str, Any], study_name: str, steps: tuple[str, ...]) -> list[dict[str, Any]]:
    study, layout = get_study(study_name), Layout.from_config(cfg)
    return [run_step(cfg, study, step, run, layout, threads=1) for step in steps for run in study.runs(cfg, step)]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    results = tmp_path_factory.mktemp("features") / "results"
    cfg = validate(tiny_settings(results, {"features": SECTION, "hsi": {"policies": ["Original", "Network_2"]}}))
    run_all(cfg, "hsi", ("prepare", "pretrain", "finetune", "evaluate"))
    summaries = run_all(cfg, "features", ("prepare", "pretrain", "finetune", "evaluate", "report"))
    return {"cfg": cfg, "layout": Layout.from_config(cfg), "summaries": summaries}


def folder(demo: dict[str, Any], step: str, run: str = "", file: str = "") -> Path:
    return Path(demo["layout"].run_dir("features", step, run, file))


def test_every_cache_has_the_extractors_width(demo):
    cfg = demo["cfg"]
    target = Path(demo["layout"].run_dir("hsi", "prepare", cfg["hsi"]["target"], "prepared.h5"))
    with h5py.File(target) as f:
        split, labels = f["split"][...], f["labels"][...]
    n_pixels = int(np.isin(split, (TRAIN, VAL, TEST)).sum())
    from rstransfer.data.readers import load_dataset

    bands = load_dataset(cfg["hsi"]["target"], cfg["datasets"][cfg["hsi"]["target"]], Path(cfg["data_root"])).n_bands
    expected = {"synthetic/random": (105, feature_dim([1, 1])), "synthetic/rgb": (105, 4 * 4 * 3),
                "synthetic/histogram": (105, 3 * 8), "hsi/spectra": (n_pixels, bands), "hsi/hybridsn": (n_pixels, 128)}
    for run, shape in expected.items():
        feats = read_features(folder(demo, "pretrain", run, "features.h5"))
        assert feats.x.shape == shape, run
        assert np.isfinite(feats.x).all() and feats.x.std() > 0
    hsi = read_features(folder(demo, "pretrain", "hsi/hybridsn", "features.h5"))
    # the pixel rows are the HSI study's own train/val/test pixels, with its labels
    rows, cols, split_rows = hsi.arrays["rows"], hsi.arrays["cols"], hsi.arrays["split"]
    assert np.array_equal(split[rows, cols], split_rows)
    assert np.array_equal(labels[rows, cols] - 1, hsi.arrays["class_ids"])
    synthetic = read_features(folder(demo, "pretrain", "synthetic/random", "features.h5"))
    assert synthetic.arrays["multilabels"].shape == (105, 17)


def test_hsi_rows_fitted_are_the_training_pixels_only(demo, monkeypatch):
    from sklearn.pipeline import Pipeline

    seen: list[np.ndarray] = []
    original = Pipeline.fit
    monkeypatch.setattr(Pipeline, "fit", lambda pipe, x, y=None, **kw: (seen.append(np.array(x)), original(pipe, x, y))[1])
    cfg, layout = demo["cfg"], demo["layout"]
    run = {"dataset": "hsi", "task": "single", "extractor": "spectra", "classifier": "rbf_svm"}
    run_step(cfg, get_study("features"), "finetune", run, layout, out=layout.run_dir("spy", "finetune"))
    feats = read_features(folder(demo, "pretrain", "hsi/spectra", "features.h5"))
    train = feats.x[feats.arrays["split"] == TRAIN]
    assert len(seen) == len(cfg["features"]["seeds"])
    for x in seen:
        assert np.array_equal(x, train)  # neither a validation nor a test pixel

    # and the prepared scene's scaler was fitted on training pixels alone (not on all labelled ones)
    with h5py.File(Path(layout.run_dir("hsi", "prepare", cfg["hsi"]["target"], "prepared.h5"))) as f:
        mean, split = f["scaler_mean"][...], f["split"][...]
    from rstransfer.data.readers import load_dataset

    cube = load_dataset(cfg["hsi"]["target"], cfg["datasets"][cfg["hsi"]["target"]], Path(cfg["data_root"])).cube
    assert np.allclose(mean, cube[split == TRAIN].mean(axis=0), rtol=1e-4)
    assert not np.allclose(mean, cube[split > 0].mean(axis=0), rtol=1e-4)


def test_report_tables_probe_and_figures(demo):
    out = folder(demo, "report")
    html = (out / "index.html").read_text()
    for table in ("scene_single", "scene_multi", "pixel", "linear_probe"):
        assert f'id="{table}"' in html and (out / f"{table}.csv").is_file()
    assert "http://" not in html and "https://" not in html
    pixel = pd.read_csv(out / "pixel.csv")
    assert {"policy Original", "policy Network_2"} <= set(pixel["classifier"])  # fine-tuning beside baselines
    assert {"raw spectra", "HybridSN penultimate layer"} <= set(pixel["features"])
    assert set(pixel.columns) >= {"OA", "AA", "Kappa", "fit s", "predict ms/item", "extract ms/item"}
    multi = pd.read_csv(out / "scene_multi.csv")
    assert set(multi.columns) >= {"F1_micro", "F1_macro", "F1_samples"} and len(multi) == 3 * 2 + 1  # + random probe
    probe = pd.read_csv(out / "linear_probe.csv")
    assert ("HybridSN penultimate layer", True) in set(zip(probe["backbone"], probe["pretrained"], strict=True))
    assert "DenseNet random init" in set(probe["backbone"])
    per_seed = pd.read_csv(out / "per_seed.csv")
    oa = per_seed[(per_seed["dataset"] == "hsi") & per_seed["OA"].notna()]["OA"]
    assert oa.between(0, 1).all() and len(oa) == 2 * (2 * 2 + 1) + 2  # 2 seeds x (2 x 2 + probe), 2 policies
    for dataset in ("synthetic", "hsi"):
        coords = pd.read_csv(out / f"features_{dataset}.csv")
        assert (out / f"features_{dataset}.png").stat().st_size > 1000 and coords[["x", "y"]].notna().all().all()
    # the feature-space projection only shows (and was fitted on) training rows
    hsi_rows = coords[coords["extractor"] == "spectra"]["row"]
    feats = read_features(folder(demo, "pretrain", "hsi/spectra", "features.h5"))
    assert (feats.arrays["split"][hsi_rows.to_numpy()] == TRAIN).all()


def test_summaries_print_one_line_each(demo):
    lines = [s["line"] for s in demo["summaries"]]
    assert all(isinstance(line, str) and "\n" not in line for line in lines)
    fitted = json.loads(folder(demo, "finetune", "synthetic/single/rgb/random_forest", "fit.json").read_text())
    assert set(fitted["seeds"]) == {"0", "1"} and fitted["width"] == 48


def test_imagenet_backbone_reads_a_local_keras_file(demo, tmp_path):
    """No ImageNet file exists offline: a DenseNet121 no-top file written here stands in for it.
    The extractor must give keras.applications.DenseNet121's pooled features with those weights."""
    from rstransfer.core.config import deep_update
    from rstransfer.core.keras import keras
    from rstransfer.models.densenet import preprocess

    weights = tmp_path / "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5"
    keras.utils.set_random_seed(3)
    keras.applications.DenseNet121(include_top=False, weights=None, input_shape=(32, 32, 3)).save_weights(str(weights))
    cfg = validate(deep_update(demo["cfg"], {"features": {
        "extractors": ["imagenet", "rgb"], "imagenet_weights": str(weights), "backbone": {"blocks": [6, 12, 24, 16]}}}))
    out = tmp_path / "imagenet_run"
    summary = run_step(cfg, get_study("features"), "pretrain", {"dataset": "synthetic", "extractor": "imagenet"},
                       demo["layout"], out=out)
    assert summary["width"] == 1024 and summary["rows"] == 105
    feats = read_features(out / "features.h5")
    with h5py.File(folder(demo, "prepare", "synthetic", "images.h5")) as f:
        images = f["images"][:8].astype("float32")
    reference = keras.applications.DenseNet121(include_top=False, weights=str(weights), input_shape=(32, 32, 3),
                                               pooling="avg")
    assert np.allclose(feats.x[:8], reference.predict(preprocess(images), verbose=0), atol=1e-4)
