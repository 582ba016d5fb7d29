"""Steps of the features study: prepare (scene images), pretrain (= feature extraction into the
cache), finetune (validation search per classifier and seed) and evaluate (test rows).

Rows and splits. Scene-wise, every seed draws a split stratified per class (``features.split``);
pixel-wise, the rows are the train/val/test pixels of the HSI study's prepared target scene and
its spatially disjoint split is used as it is (so the numbers sit beside the fine-tuning
policies; seeds then only change the classifier's seed). Test rows are read in ``evaluate`` and
nowhere else: ``finetune`` hands only training and validation rows to the scaler and the
classifiers.
"""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from rstransfer.core.errors import DataFormatError
from rstransfer.core.io import atomic_path, write_json, write_text
from rstransfer.core.study import StepContext
from rstransfer.data.splits import TEST, TRAIN, VAL

from . import PIXEL, domain, pretrain_params
from . import classifiers as clf
from .extract import FEATURES_FILE, FeatureCache, Source, get_extractor, is_complete, read_features

IMAGES_FILE = "images.h5"
HSI_PREPARED = "prepared.h5"  # in the HSI study's prepare run folder
SPLITS_FILE, FIT_FILE, METRICS_FILE = "splits.json", "fit.json", "metrics.json"


def data_path(cfg: dict[str, Any], path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else Path(cfg["data_root"]) / p


def threads_of(ctx: StepContext) -> int:
    from rstransfer.core.fit import env_threads

    return int(ctx.threads or env_threads() or 1)


# ---------------------------------------------------------------- prepare (scene datasets)


def _load_ucmerced(ctx: StepContext) -> Any:
    from rstransfer.data.ucmerced import load_ucmerced

    s = ctx.section
    labels = data_path(ctx.cfg, s["ucmerced"]["labels"]) if "multi" in s["tasks"] else None
    return load_ucmerced(data_path(ctx.cfg, s["ucmerced"]["images"]), labels, s["image_size"],
                         per_class=s["ucmerced"]["per_class"] or None)


def _load_synthetic(ctx: StepContext) -> Any:
    from rstransfer.data.synthetic_scenes import write_synthetic_ucmerced
    from rstransfer.data.ucmerced import load_ucmerced

    syn = ctx.section["synthetic"]
    with tempfile.TemporaryDirectory(dir=ctx.out.parent, prefix=f".{ctx.out.name}.gen") as tmp:
        images, labels = write_synthetic_ucmerced(tmp, per_class=syn["per_class"], size=syn["size"], seed=syn["seed"])
        return load_ucmerced(images, labels, ctx.section["image_size"])


#: scene-wise datasets: name -> loader returning a rstransfer.data.ucmerced.SceneSet
SCENES = {"ucmerced": _load_ucmerced, "synthetic": _load_synthetic}


def prepare_step(ctx: StepContext) -> dict[str, Any]:
    """Read (or generate) the scene set once, resized to ``image_size``: ``images.h5``."""
    dataset = ctx.run["dataset"]
    scenes = SCENES[dataset](ctx)
    with atomic_path(ctx.out / IMAGES_FILE) as tmp, h5py.File(tmp, "w") as f:
        # track_times=False: the same images give the same bytes, so the extraction cache stays valid
        f.create_dataset("images", data=scenes.images, chunks=(1, *scenes.images.shape[1:]), track_times=False)
        f.create_dataset("class_ids", data=scenes.class_ids, track_times=False)
        f.create_dataset("names", data=np.array(scenes.names, dtype="S"), track_times=False)
        if scenes.multilabels is not None:
            f.create_dataset("multilabels", data=scenes.multilabels, track_times=False)
        f.attrs["classes"] = list(scenes.classes)
        f.attrs["label_names"] = list(scenes.label_names)
    summary = {"dataset": dataset, "images": len(scenes), "size": int(scenes.images.shape[1]),
               "classes": len(scenes.classes), "labels": len(scenes.label_names)}
    write_json(ctx.out / "summary.json", summary)
    return {**summary, "line": f"prepared {dataset}: {len(scenes)} images, {len(scenes.classes)} classes"}


# ---------------------------------------------------------------- splits


def scene_split(class_ids: np.ndarray, seed: int, fractions: dict[str, float]) -> np.ndarray:
    """Per-class random split (TRAIN/VAL/TEST per row), drawn from ``seed`` alone."""
    rng = np.random.default_rng([int(seed), 7919])
    split = np.zeros(len(class_ids), dtype=np.uint8)
    total = fractions["train"] + fractions["val"] + fractions["test"]
    for c in np.unique(class_ids):
        idx = rng.permutation(np.flatnonzero(class_ids == c))
        n_val = max(1, int(round(fractions["val"] / total * len(idx))))
        n_test = max(1, int(round(fractions["test"] / total * len(idx))))
        if len(idx) - n_val - n_test < 1:
            raise DataFormatError(f"features.split: class {int(c)} has {len(idx)} images, too few for train/val/test")
        split[idx[:n_test]] = TEST
        split[idx[n_test:n_test + n_val]] = VAL
        split[idx[n_test + n_val:]] = TRAIN
    return split


def row_split(feats: Any, seed: int, section: dict[str, Any]) -> np.ndarray:
    """TRAIN/VAL/TEST per row: the prepared HSI split, or a seeded scene split."""
    if "split" in feats.arrays:
        return feats.arrays["split"]
    return scene_split(feats.arrays["class_ids"], seed, section["split"])


# ---------------------------------------------------------------- pretrain = extraction


def _scene_source(ctx: StepContext) -> tuple[Source, dict[str, np.ndarray], dict[str, Any]]:
    path = Path(ctx.inputs["images"]) / IMAGES_FILE
    try:
        with h5py.File(path, "r") as f:
            arrays = {k: f[k][...] for k in ("class_ids", "names", "multilabels") if k in f}
            images = f["images"][...]
            meta = {"classes": list(f.attrs["classes"]), "label_names": list(f.attrs["label_names"])}
    except (OSError, KeyError) as exc:
        raise DataFormatError(f"{path}: not a prepared scene set ({exc})") from None
    return Source(ctx.run["dataset"], len(images), images=images), arrays, meta


def _pixel_source(ctx: StepContext, extractor: str) -> tuple[Source, dict[str, np.ndarray], dict[str, Any]]:
    from rstransfer.data.prepare import load_prepared

    prepared = load_prepared(Path(ctx.inputs["data"]) / HSI_PREPARED)
    parts = [prepared.pixels(k) for k in (TRAIN, VAL, TEST)]
    rows, cols, ids = (np.concatenate([p[i] for p in parts]) for i in range(3))
    split = np.concatenate([np.full(len(p[0]), k, dtype=np.uint8) for p, k in zip(parts, (TRAIN, VAL, TEST), strict=True)])
    raw = None
    if extractor == "spectra":
        from rstransfer.data.readers import load_dataset

        key = ctx.cfg["hsi"]["target"]
        scene = load_dataset(key, ctx.cfg["datasets"][key], Path(ctx.cfg["data_root"]))
        if scene.labels.shape != prepared.labels.shape or not np.array_equal(scene.labels, prepared.labels):
            raise DataFormatError(f"datasets.{key}: the scene's labels differ from {ctx.inputs['data']}; rerun hsi prepare")
        raw = scene.cube
    src = Source(PIXEL, len(rows), prepared=prepared, rows=rows, cols=cols, raw_cube=raw)
    arrays = {"class_ids": ids.astype(np.int64), "split": split, "rows": rows, "cols": cols}
    return src, arrays, {"classes": list(prepared.class_names), "label_names": [], "scene": prepared.dataset}


def pretrain_step(ctx: StepContext) -> dict[str, Any]:
    """Extract one (dataset, extractor) into ``features.h5``; reuse or resume the cache."""
    from rstransfer.core.config import config_digest

    dataset, name = ctx.run["dataset"], ctx.run["extractor"]
    ext = get_extractor(name)
    fingerprint = config_digest({"params": pretrain_params(ctx.cfg, ctx.run), "inputs": ctx.input_digest()})
    out = ctx.out / FEATURES_FILE
    previous = ctx.final / FEATURES_FILE
    if is_complete(previous, fingerprint):  # same settings, same inputs: reuse the cache
        try:
            os.link(previous, out)
        except OSError:
            shutil.copy2(previous, out)
        feats = read_features(out)
        return _extract_summary(ctx, feats, reused=True)

    if ext.network:
        from rstransfer.core.fit import setup_runtime

        setup_runtime(ctx.section["backbone"]["seed"], ctx.cfg["deterministic"], ctx.threads)
    src, arrays, meta = _scene_source(ctx) if domain(dataset) == "scene" else _pixel_source(ctx, name)
    fn, width, info = ext.make(ctx.section, ctx.inputs, src)
    cache = FeatureCache(ctx.checkpoint_dir / FEATURES_FILE, fingerprint, src.n, width,
                         {"extractor": name, "dataset": dataset, "info": info, **meta})
    resumed_from = start = cache.done
    batch = ctx.section["batch_size"]
    while start < src.n:
        idx = np.arange(start, min(start + batch, src.n))
        t0 = time.perf_counter()
        block = fn(idx)
        cache.write(start, block, time.perf_counter() - t0)
        start += len(idx)
    cache.finish(arrays)
    os.replace(cache.path, out)
    shutil.rmtree(ctx.checkpoint_dir, ignore_errors=True)
    return _extract_summary(ctx, read_features(out), reused=False, resumed_from=resumed_from)


def _extract_summary(ctx: StepContext, feats: Any, reused: bool, resumed_from: int = 0) -> dict[str, Any]:
    n, seconds = len(feats.x), float(feats.attrs["seconds"])
    summary = {"dataset": ctx.run["dataset"], "extractor": ctx.run["extractor"], "rows": n, "width": feats.width,
               "seconds": seconds, "ms_per_item": 1000 * seconds / max(n, 1), "reused": reused,
               "resumed_from": resumed_from, "info": feats.attrs.get("info", {})}
    write_json(ctx.out / "extract.json", summary)
    how = "reused" if reused else f"{seconds:.1f} s"
    return {**summary, "line": f"features {summary['extractor']} on {summary['dataset']}: {n} x {feats.width} ({how})"}


# ---------------------------------------------------------------- finetune = classifier search


def targets(feats: Any, task: str) -> np.ndarray:
    if task == "multi":
        if "multilabels" not in feats.arrays:
            raise DataFormatError(f"{feats.path}: no multi-labels (features.ucmerced.labels; task multi)")
        return feats.arrays["multilabels"].astype(np.int64)
    return feats.arrays["class_ids"].astype(np.int64)


def load_run_features(ctx: StepContext) -> Any:
    ext = get_extractor(ctx.run["extractor"])
    return read_features(Path(ctx.inputs["features"]) / FEATURES_FILE, expected_width=ext.width(ctx.section))


def finetune_step(ctx: StepContext) -> dict[str, Any]:
    """Validation search of one classifier on one feature cache, once per seed."""
    name, task = ctx.run["classifier"], ctx.run["task"]
    clf.get_classifier(name)
    feats = load_run_features(ctx)
    y = targets(feats, task)
    multi = task == "multi"
    fits, splits, rows = {}, {}, []
    for seed in ctx.section["seeds"]:
        split = row_split(feats, seed, ctx.section)
        tr, va, te = (np.flatnonzero(split == k) for k in (TRAIN, VAL, TEST))
        est, record, search_rows = clf.search(
            name, ctx.section["grids"][name], (feats.x[tr], y[tr]), (feats.x[va], y[va]), seed, multi, threads_of(ctx)
        )
        with atomic_path(ctx.out / f"seed{seed}.pkl") as tmp:
            tmp.write_bytes(pickle.dumps(est))
        fits[str(seed)] = record
        splits[str(seed)] = {"train": tr.tolist(), "val": va.tolist(), "test": te.tolist()}
        rows += [{"seed": seed, **r} for r in search_rows]
    import pandas as pd

    write_text(ctx.out / "search.csv", pd.DataFrame(rows).to_csv(index=False))
    write_json(ctx.out / SPLITS_FILE, splits)
    write_json(ctx.out / FIT_FILE, {**{k: ctx.run[k] for k in ("dataset", "task", "extractor", "classifier")},
                                    "seeds": fits, "width": feats.width})
    best = np.mean([r["val_score"] for r in fits.values()])
    return {"line": f"fitted {name} on {ctx.run['extractor']}/{ctx.run['dataset']} ({task}): val {best:.4f}"}


# ---------------------------------------------------------------- evaluate


def multilabel_scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    """The project's multi-label F1 (``core.metrics.multilabel_scores``) under this report's column names."""
    from rstransfer.core.metrics import multilabel_scores as scores

    s = scores(y_true, y_pred)
    return {"F1_micro": s["micro_f1"], "F1_macro": s["macro_f1"], "F1_samples": s["sample_f1"],
            "per_label_F1": [0.0 if v is None else v for v in s["per_label_f1"]]}


def evaluate_step(ctx: StepContext) -> dict[str, Any]:
    """Predict the test rows of every seed; scores, prediction time per row."""
    from rstransfer.core.metrics import confusion_matrix, scores
    from rstransfer.core.report import read_json

    run_dir = Path(ctx.inputs["run"])
    made_by = "rstransfer finetune --study features"
    fit, splits = read_json(run_dir / FIT_FILE, made_by), read_json(run_dir / SPLITS_FILE, made_by)
    feats = load_run_features(ctx)
    task = ctx.run["task"]
    y = targets(feats, task)
    n_classes = len(feats.attrs["classes"])
    extract = read_json(Path(ctx.inputs["features"]) / "extract.json", "rstransfer pretrain --study features")
    per_seed = []
    for seed, record in fit["seeds"].items():
        te = np.asarray(splits[seed]["test"], dtype=np.int64)
        est = pickle.loads((run_dir / f"seed{seed}.pkl").read_bytes())
        t0 = time.perf_counter()
        pred = est.predict(feats.x[te])
        seconds = time.perf_counter() - t0
        if task == "multi":
            result = multilabel_scores(y[te], pred)
        else:
            result = scores(confusion_matrix(y[te], pred, n_classes))
        per_seed.append({"seed": int(seed), **result, "n_train": record["n_train"], "n_val": record["n_val"],
                         "n_test": int(len(te)), "params": record["params"], "val_score": record["val_score"],
                         "fit_seconds": record["fit_seconds"], "search_seconds": record["search_seconds"],
                         "predict_ms_per_item": 1000 * seconds / max(len(te), 1)})
    metrics = {**{k: ctx.run[k] for k in ("dataset", "task", "extractor", "classifier")},
               "classes": feats.attrs["classes"], "label_names": feats.attrs.get("label_names", []),
               "extract_ms_per_item": extract["ms_per_item"], "width": feats.width, "per_seed": per_seed}
    write_json(ctx.out / METRICS_FILE, metrics)
    key = "F1_micro" if task == "multi" else "OA"
    mean = float(np.mean([r[key] for r in per_seed]))
    return {"line": f"evaluated {ctx.run['classifier']} on {ctx.run['extractor']}/{ctx.run['dataset']}: {key} {mean:.4f}"}
