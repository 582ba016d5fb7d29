"""features study on the 420 real UC Merced images (../shared/data/ucmerced/Images): with one
fixed split, random forest on DenseNet121 features beats random forest on raw RGB pixels (the
lecture's RF-features vs RF-RGB comparison). No ImageNet weights exist offline, so the
backbone is the randomly initialised DenseNet121: the floor of every pretrained backbone.

Measured on this deterministic run (seed 0, 12/4/4 images per class, 128 px, 2 cores):
RF on random-DenseNet121 features OA 0.726, RF on 32x32 RGB OA 0.440 (margin 0.286, 84 test
images); the assertion keeps half of that margin.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import ci_log, tiny_settings
from rstransfer.core.config import validate
from rstransfer.core.paths import Layout
from rstransfer.core.study import run_step
from rstransfer.studies import get_study

MEASURED = {"random": 0.726, "rgb": 0.440}
MARGIN = 0.14  # half of the measured 0.286


@pytest.fixture(scope="module")
def real_run(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    section = {
        "enabled": True, "datasets": ["ucmerced"], "tasks": ["single", "multi"], "seeds": [0], "image_size": 128,
        "ucmerced": {"images": str(shared_data / "ucmerced" / "Images"),
                     "labels": str(shared_data / "ucmerced_multilabel" / "multilabels" / "LandUse_Multilabeled.txt")},
        "extractors": ["random", "rgb"], "classifiers": ["random_forest"],
        "grids": {"random_forest": {"n_estimators": [200], "max_depth": [None], "max_features": ["sqrt"]},
                  "linear_svm": {"C": [0.001]}},
    }
    results = tmp_path_factory.mktemp("features_real") / "results"
    cfg = validate(tiny_settings(results, {"features": section, "hsi": {"enabled": False}}))
    study, layout = get_study("features"), Layout.from_config(cfg)
    for step in ("prepare", "pretrain", "finetune", "evaluate"):
        for run in study.runs(cfg, step):
            run_step(cfg, study, step, run, layout, threads=2)
    out = {}
    for run in study.runs(cfg, "evaluate"):
        path = Path(layout.run_dir("features", "evaluate", "{dataset}/{task}/{extractor}/{classifier}".format(**run)))
        out["/".join((run["task"], run["extractor"], run["classifier"]))] = json.loads((path / "metrics.json").read_text())
    return out


def test_real_images_feature_forest_beats_pixel_forest(real_run):
    features = real_run["single/random/random_forest"]["per_seed"][0]
    pixels = real_run["single/rgb/random_forest"]["per_seed"][0]
    assert features["n_test"] == pixels["n_test"] == 84 and features["n_train"] == 252
    ci_log(f"features study, real UC Merced (420 images, seed 0): RF on random-DenseNet121 features OA "
           f"{features['OA']:.3f}, RF on raw RGB OA {pixels['OA']:.3f} (measured {MEASURED})")
    assert features["OA"] - pixels["OA"] >= MARGIN
    assert pixels["OA"] > 3 / 21  # raw pixels are far above chance too: the margin is not a broken baseline


def test_real_images_multilabel_and_probe(real_run):
    multi = real_run["multi/random/random_forest"]["per_seed"][0]
    assert len(real_run["multi/random/random_forest"]["label_names"]) == 17
    assert 0.3 < multi["F1_micro"] <= 1.0 and 0.0 <= multi["F1_macro"] <= multi["F1_micro"] + 0.2
    probe = real_run["single/random/linear_svm"]["per_seed"][0]  # the floor's linear probe
    assert probe["OA"] > 3 / 21
