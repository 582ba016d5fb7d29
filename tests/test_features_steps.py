"""features study without TensorFlow: the classifier registry, the validation search, the scene
split, the feature cache (reuse, resume, wrong width) and the finetune/evaluate steps on a
hand-made cache, with a spy that proves no test row reaches the scaler or a classifier."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from conftest import REPO_ROOT, tiny_settings
from rstransfer.core.config import validate
from rstransfer.core.errors import ConfigError, DataFormatError
from rstransfer.core.paths import Layout
from rstransfer.core.study import run_step
from rstransfer.data.splits import TEST, TRAIN, VAL
from rstransfer.studies import get_study
from rstransfer.studies.features import classifiers as clf
from rstransfer.studies.features import classifier_runs, extract_runs
from rstransfer.studies.features.extract import EXTRACTORS, FeatureCache, read_features
from rstransfer.studies.features.steps import scene_split

SCHEMA = yaml.safe_load((REPO_ROOT / "src/rstransfer/studies/features/schema.yaml").read_text())
N_CLASSES, PER_CLASS, RGB = 5, 10, 2  # rgb_size 2 -> width 12


def config(results: Path, hsi: bool = False, **features: Any) -> dict[str, Any]:
    section = {"enabled": True, "datasets": ["synthetic"], "tasks": ["single", "multi"], "extractors": ["rgb"],
               "seeds": [0, 1], "rgb_size": RGB,
               "grids": {"linear_svm": {"C": [0.01, 1.0]}, "rbf_svm": {"C": [1.0], "gamma": ["scale"]},
                         "random_forest": {"n_estimators": [20], "max_depth": [None], "max_features": ["sqrt"]}},
               **features}
    return validate(tiny_settings(results, {"features": section, "hsi": {"enabled": hsi}}))


def planted_cache(cfg: dict[str, Any], width: int = RGB * RGB * 3) -> tuple[Path, np.ndarray]:
    """A finished cache as pretrain writes it; column 0 = row id (so a spy can tell rows apart)."""
    rng = np.random.default_rng(0)
    n = N_CLASSES * PER_CLASS
    y = np.repeat(np.arange(N_CLASSES), PER_CLASS)
    x = rng.normal(size=(n, width)).astype(np.float32)
    x[np.arange(n), 1 + y] += 4  # a learnable signal: one column per class
    x[:, 0] = np.arange(n)
    multi = np.stack([y % 2, (y >= 2), (y == 4)], axis=1).astype(np.uint8)
    folder = Path(Layout.from_config(cfg).run_dir("features", "pretrain", "synthetic/rgb"))
    cache = FeatureCache(folder / "features.h5", "planted", n, width,
                         {"extractor": "rgb", "dataset": "synthetic", "classes": [f"c{i}" for i in range(N_CLASSES)],
                          "label_names": ["odd", "big", "four"]})
    cache.write(0, x, seconds=0.5)
    cache.finish({"class_ids": y, "multilabels": multi})
    (folder / "extract.json").write_text(json.dumps({"ms_per_item": 10.0}))
    return folder, x


def test_registries_match_the_schema_enums():
    props = SCHEMA["properties"]
    assert props["classifiers"]["items"]["enum"] == list(clf.CLASSIFIERS)
    assert set(props["grids"]["properties"]) == set(clf.CLASSIFIERS)
    assert props["extractors"]["items"]["enum"] == list(EXTRACTORS)


def test_unknown_classifier_is_a_one_line_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown classifier 'svm_magic'") as err:
        clf.get_classifier("svm_magic")
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="svm_magic"):
        config(tmp_path, classifiers=["svm_magic"])
    cfg = config(tmp_path)
    planted_cache(cfg)
    run = {"dataset": "synthetic", "task": "single", "extractor": "rgb", "classifier": "svm_magic"}
    with pytest.raises(ConfigError, match="svm_magic") as err:  # not a run of this config
        run_step(cfg, get_study("features"), "finetune", run, Layout.from_config(cfg))
    assert "\n" not in str(err.value)
    assert not Path(Layout.from_config(cfg).run_dir("features", "finetune", "synthetic/single/rgb/svm_magic")).exists()


def test_missing_imagenet_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"features.imagenet_weights: .*nowhere\.h5 not found") as err:
        config(tmp_path, extractors=["imagenet"], imagenet_weights=str(tmp_path / "nowhere.h5"))
    assert "\n" not in str(err.value)


def test_studies_read_must_run_or_have_run(tmp_path):
    with pytest.raises(ConfigError, match=r"features.datasets: hsi reads the hsi study's prepare output") as err:
        config(tmp_path, datasets=["hsi"], extractors=["spectra"])
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match=r"features.extractors: byol reads the multilabel study's pretrain output"):
        config(tmp_path, extractors=["byol"])
    (tmp_path / "multilabel" / "pretrain").mkdir(parents=True)  # made earlier (e.g. by another config)
    assert config(tmp_path, extractors=["byol"])["features"]["extractors"] == ["byol"]


def test_runs_give_every_pretrained_backbone_a_linear_probe(tmp_path):
    cfg = config(tmp_path, hsi=True, datasets=["synthetic", "hsi"], extractors=["rgb", "random", "spectra", "hybridsn"],
                 classifiers=["random_forest"])
    assert {(r["dataset"], r["extractor"]) for r in extract_runs(cfg)} == {
        ("synthetic", "rgb"), ("synthetic", "random"), ("hsi", "spectra"), ("hsi", "hybridsn")}
    runs = {(r["dataset"], r["task"], r["extractor"], r["classifier"]) for r in classifier_runs(cfg)}
    assert ("hsi", "single", "hybridsn", "linear_svm") in runs  # the probe of the pretrained HybridSN
    assert ("hsi", "single", "spectra", "linear_svm") not in runs  # raw spectra: no probe
    assert ("synthetic", "multi", "rgb", "random_forest") in runs
    assert ("synthetic", "single", "random", "linear_svm") in runs  # the random floor is probed too
    assert ("synthetic", "single", "rgb", "linear_svm") not in runs
    assert not any(r[0] == "hsi" and r[1] == "multi" for r in runs)


def test_scene_split_is_stratified_seeded_and_disjoint():
    y = np.repeat(np.arange(4), 20)
    fr = {"train": 0.6, "val": 0.2, "test": 0.2}
    a, b, c = scene_split(y, 0, fr), scene_split(y, 0, fr), scene_split(y, 1, fr)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    for k, n in ((TRAIN, 12), (VAL, 4), (TEST, 4)):
        assert all(((a == k) & (y == cls)).sum() == n for cls in range(4))
    with pytest.raises(DataFormatError, match="too few"):
        scene_split(np.array([0, 0, 1, 1, 1]), 0, fr)


def test_search_keeps_the_best_validation_point():
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1], 40)
    x = rng.normal(size=(80, 5))
    x[:, 0] += 2.5 * y
    tr, va = np.arange(0, 80, 2), np.arange(1, 80, 2)
    grid = {"C": [1.0], "gamma": [1000.0, "scale"]}  # gamma 1000 memorises the training rows
    est, record, rows = clf.search("rbf_svm", grid, (x[tr], y[tr]), (x[va], y[va]), 0, False)
    assert [r["param_gamma"] for r in rows] == [1000.0, "scale"]
    assert record["params"] == {"C": 1.0, "gamma": "scale"}
    assert record["val_score"] == max(r["val_score"] for r in rows) > 0.8
    assert rows[0]["val_score"] <= 0.6
    assert record["n_train"] == 40 and record["grid_points"] == 2


class FitSpy:
    """Records the rows every Pipeline.fit sees (column 0 = row id)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        from sklearn.pipeline import Pipeline

        self.seen: list[np.ndarray] = []
        original = Pipeline.fit

        def fit(pipe, x, y=None, **kw):
            self.seen.append(np.asarray(x)[:, 0].astype(int))
            return original(pipe, x, y, **kw)

        monkeypatch.setattr(Pipeline, "fit", fit)


@pytest.mark.parametrize("classifier", list(clf.CLASSIFIERS))
@pytest.mark.parametrize("task", ["single", "multi"])
def test_no_test_row_reaches_fitting_and_evaluate_scores(tmp_path, monkeypatch, classifier, task):
    cfg = config(tmp_path)
    planted_cache(cfg)
    spy = FitSpy(monkeypatch)
    layout, study = Layout.from_config(cfg), get_study("features")
    run = {"dataset": "synthetic", "task": task, "extractor": "rgb", "classifier": classifier}
    run_step(cfg, study, "finetune", run, layout)
    folder = Path(layout.run_dir("features", "finetune", f"synthetic/{task}/rgb/{classifier}"))
    splits = json.loads((folder / "splits.json").read_text())
    points = len(clf.grid_points(classifier, cfg["features"]["grids"][classifier]))
    assert len(spy.seen) == points * len(cfg["features"]["seeds"])
    for i, seen in enumerate(spy.seen):
        s = splits[str(cfg["features"]["seeds"][i // points])]
        assert np.array_equal(np.sort(seen), np.sort(s["train"]))  # exactly the training rows
        assert not set(seen) & set(s["test"]) and not set(seen) & set(s["val"])
    assert sorted(splits["0"]["train"] + splits["0"]["val"] + splits["0"]["test"]) == list(range(50))

    run_step(cfg, study, "evaluate", run, layout)
    metrics = json.loads(Path(layout.run_dir("features", "evaluate", f"synthetic/{task}/rgb/{classifier}",
                                             "metrics.json")).read_text())
    key = "F1_micro" if task == "multi" else "OA"
    assert [r["seed"] for r in metrics["per_seed"]] == [0, 1]
    for r in metrics["per_seed"]:
        assert r["n_test"] == 10 and 0.0 <= r[key] <= 1.0
        assert r["predict_ms_per_item"] >= 0 and r["fit_seconds"] > 0
    assert np.mean([r[key] for r in metrics["per_seed"]]) > 0.6  # the planted signal is learnable
    assert metrics["extract_ms_per_item"] == 10.0


def test_cache_resumes_restarts_and_rejects_a_wrong_width(tmp_path):
    path = tmp_path / "c.h5"
    cache = FeatureCache(path, "fp1", 10, 4, {"extractor": "rgb", "dataset": "d"})
    cache.write(0, np.ones((6, 4)), 1.0)
    assert FeatureCache(path, "fp1", 10, 4, {}).done == 6  # same fingerprint: resume
    with pytest.raises(DataFormatError, match=r"c\.h5: features of width 5 .* cached file of width 4") as err:
        FeatureCache(path, "fp1", 10, 5, {"extractor": "rgb", "dataset": "d"})
    assert "\n" not in str(err.value)
    with pytest.raises(DataFormatError, match="width 3 do not fit"):
        cache.write(6, np.ones((4, 3)), 1.0)
    assert FeatureCache(path, "fp2", 10, 5, {}).done == 0  # other settings: start afresh
    with pytest.raises(DataFormatError, match="not a finished feature cache"):
        read_features(path)


def test_finetune_rejects_features_of_the_wrong_width(tmp_path):
    cfg = config(tmp_path)
    folder, _ = planted_cache(cfg, width=7)  # rgb_size 2 gives 12 values
    with pytest.raises(DataFormatError, match=r"features\.h5: cached features have width 7 but rgb gives 12") as err:
        run_step(cfg, get_study("features"), "finetune",
                 {"dataset": "synthetic", "task": "single", "extractor": "rgb", "classifier": "linear_svm"},
                 Layout.from_config(cfg))
    assert "\n" not in str(err.value)


def test_pretrain_reuses_and_resumes_its_cache(tmp_path, monkeypatch):
    import rstransfer.studies.features.extract as extract

    cfg = config(tmp_path, synthetic={"per_class": 3, "size": 32}, image_size=32, batch_size=16, extractors=["histogram"])
    layout, study = Layout.from_config(cfg), get_study("features")
    run_step(cfg, study, "prepare", {"dataset": "synthetic"}, layout)
    run = {"dataset": "synthetic", "extractor": "histogram"}
    reference = run_step(cfg, study, "pretrain", run, layout)
    assert not reference["reused"] and reference["rows"] == 63 and reference["width"] == 3 * 32
    first = read_features(Path(layout.run_dir("features", "pretrain", "synthetic/histogram", "features.h5")))

    def broken(*args):
        raise AssertionError("a reused cache must not extract again")

    monkeypatch.setitem(extract.EXTRACTORS, "histogram", dataclasses.replace(EXTRACTORS["histogram"], make=broken))
    again = run_step(cfg, study, "pretrain", run, layout)
    assert again["reused"]
    monkeypatch.undo()

    # a job killed after two batches resumes at row 32 and ends with the same features
    import shutil

    shutil.rmtree(layout.run_dir("features", "pretrain", "synthetic/histogram"))
    calls = {"n": 0}
    entry = EXTRACTORS["histogram"]

    def dying(section, inputs, src):
        fn, width, info = entry.make(section, inputs, src)

        def once(idx):
            calls["n"] += 1
            if calls["n"] == 3:
                raise KeyboardInterrupt("time limit")
            return fn(idx)

        return once, width, info

    monkeypatch.setitem(extract.EXTRACTORS, "histogram", dataclasses.replace(entry, make=dying))
    with pytest.raises(KeyboardInterrupt):
        run_step(cfg, study, "pretrain", run, layout)
    monkeypatch.undo()
    resumed = run_step(cfg, study, "pretrain", run, layout)
    assert resumed["resumed_from"] == 32 and not resumed["reused"]
    final = read_features(Path(layout.run_dir("features", "pretrain", "synthetic/histogram", "features.h5")))
    assert np.array_equal(final.x, first.x)
    assert np.array_equal(final.arrays["class_ids"], first.arrays["class_ids"])
