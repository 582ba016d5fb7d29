"""The U-Net study end to end (rstransfer.studies.unet) through ``run_step``.

* **The forum regression**: pre-train on a deterministic synthetic task, replace the head,
  retrain on the same data with ``head_only`` -> pixel accuracy on the retrained stripe (and on
  the test stripe) >= the pretrained model's - 1 point; every pretrained weight is
  bit-identical after fine-tuning; the report shows the pretrained accuracy next to
  ``head_only`` and the unprotected case (all factors 1 at the pre-training rate).
* The report flags a policy that lost accuracy (red verdict box, "WORSE" in its row).
* The real Sentinel-2 EOPatch (frames 2-4): reader, class-id remapping with the ignore label,
  one known pixel, and a small run through every step with mIoU in [0, 1].
* Seeded random patches (same (seed, epoch) -> same patches, inside the training stripe,
  resume-exact); bad input fails with one line and writes nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from rstransfer.core.config import deep_update, validate
from rstransfer.core.errors import ConfigError, DataFormatError, DatasetNotFoundError
from rstransfer.core.paths import Layout
from rstransfer.core.study import run_step
from rstransfer.studies import get_study, load_all
from rstransfer.studies.unet import data as ud

SYNTHETIC = {
    "enabled": True,
    "policies": ["head_only", "unprotected"],
    "data": {"dataset": "synthetic", "synthetic": {"height": 80, "width": 64, "bands": 4, "frames": 2,
                                                   "classes": 3, "seed": 1}},
    "patches": {"size": 16, "per_image": 64},
    "model": {"depth": 2, "base_filters": 4, "bn_momentum": 0.9, "dropout": 0.0},
    "pretrain": {"epochs": 3, "learning_rate": 0.05, "patience": 3},
    "finetune": {"epochs": 2, "learning_rate": 0.005, "patience": 2},
}


@pytest.fixture(autouse=True)
def _tf_threads_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Steps run in this process after other tests started TensorFlow: its thread pools can no
    longer be set (``setup_runtime`` sets them only when asked)."""
    monkeypatch.delenv("RSTRANSFER_THREADS", raising=False)


def make_cfg(results: Path, unet: dict[str, Any], data_root: Path | None = None) -> dict[str, Any]:
    """A validated config with only the U-Net study enabled."""
    others = {name: {"enabled": False} for name in load_all() if name != "unet"}
    cfg = {"results": str(results), "deterministic": True, **others, "unet": unet}
    if data_root is not None:
        cfg["data_root"] = str(data_root)
    return validate(cfg)


def run(cfg: dict[str, Any], step: str, **wildcards: Any) -> dict[str, Any]:
    run_ = {k: str(v) for k, v in wildcards.items()}
    return run_step(cfg, get_study("unet"), step, run_, Layout.from_config(cfg))


def run_all(cfg: dict[str, Any]) -> None:
    study = get_study("unet")
    for step in ("prepare", "pretrain", "finetune", "evaluate", "report"):
        for r in study.runs(cfg, step):
            run(cfg, step, **r)


def model_weights(path: Path) -> dict[str, list[np.ndarray]]:
    from rstransfer.core.fit import load_model

    model = load_model(path)
    return {layer.name: layer.get_weights() for layer in model.layers if layer.weights}


def test_forum_regression_head_only_keeps_pretrained_accuracy(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path / "results", SYNTHETIC)
    run_all(cfg)
    root = tmp_path / "results" / "unet"

    def metrics(policy: str) -> dict[str, Any]:
        return json.loads((root / "evaluate" / policy / "seed0" / "metrics.json").read_text())["regions"]

    pre, head = metrics("pretrained"), metrics("head_only")
    assert pre["train"]["pixel_accuracy"] > 0.8  # the pre-training learned the task
    for region in ("train", "test"):
        assert head[region]["pixel_accuracy"] >= pre[region]["pixel_accuracy"] - 0.01, region
        assert 0.0 <= head[region]["mIoU"] <= 1.0

    before = model_weights(root / "pretrain" / "model.keras")
    after = model_weights(root / "finetune" / "head_only" / "seed0" / "model.keras")
    assert set(before) == set(after)
    for name, ws in before.items():
        same = all(np.array_equal(a, b) for a, b in zip(ws, after[name], strict=True))
        assert same == (name != "head_conv"), name  # frozen: bit-identical; the new head trained
    train = json.loads((root / "finetune" / "head_only" / "seed0" / "train.json").read_text())
    assert {g["factor"]: g["learning_rate"] for g in train["groups"]} == {0.0: 0.0, 10.0: pytest.approx(0.05)}

    summary = pd.read_csv(root / "report" / "summary.csv")
    assert list(summary["policy"]) == ["pretrained", "head_only", "unprotected"]
    assert summary.set_index("policy").loc["unprotected", "learning_rate"] == pytest.approx(0.05)
    html = (root / "report" / "index.html").read_text()
    assert 'id=verdict' in html and "unprotected" in html and "head_only" in html
    assert f"{100 * pre['train']['pixel_accuracy']:.2f} %" in html  # the pretrained reference is on the page
    assert "http://" not in html and "https://" not in html  # self-contained
    for name in ("per_class_iou.csv", "lr_groups.csv", "runs.csv", "accuracy.csv"):
        assert (root / "report" / name).is_file()
    png = root / "evaluate" / "head_only" / "seed0" / "prediction_frame1.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_flags_a_policy_that_lost_accuracy() -> None:
    from rstransfer.studies.unet.report import summary_table, verdict_box

    df = pd.DataFrame([
        {"policy": "pretrained", "seed": 0, "train_accuracy": 0.90, "test_accuracy": 0.85, "test_mIoU": 0.5,
         "learning_rate": 0.05, "trainable_params": 100},
        {"policy": "head_only", "seed": 0, "train_accuracy": 0.905, "test_accuracy": 0.846, "test_mIoU": 0.5,
         "learning_rate": 1e-4, "trainable_params": 10},
        {"policy": "unprotected", "seed": 0, "train_accuracy": 0.61, "test_accuracy": 0.55, "test_mIoU": 0.2,
         "learning_rate": 0.05, "trainable_params": 100},
    ])
    numeric, shown, worse = summary_table(df, tolerance=0.01)
    assert worse == ["unprotected"]
    assert list(shown["verdict"]) == ["reference", "ok", "WORSE than pretrained"]
    assert numeric.set_index("policy").loc["unprotected", "delta_train"] == pytest.approx(-0.29)
    box = verdict_box(worse, numeric, 0.01)
    assert "WORSE THAN BEFORE FINE-TUNING" in box and "-29.00 points" in box and "90.00 %" in box
    assert "No policy lost" in verdict_box([], numeric, 0.01)


def s2_cfg(tmp_path: Path, shared: Path, **over: Any) -> dict[str, Any]:
    unet = deep_update({
        "enabled": True, "policies": ["head_only"],
        "data": {"dataset": "s2_eopatch", "s2_eopatch": {"path": str(shared / "s2_eopatch")}},
        "patches": {"size": 32, "per_image": 16},
        "model": {"depth": 3, "base_filters": 4, "bn_momentum": 0.9, "dropout": 0.0},
        "pretrain": {"epochs": 2, "patience": 2},
        "finetune": {"epochs": 1, "learning_rate": 0.005, "patience": 1},
    }, over)
    return make_cfg(tmp_path / "results", unet)


def test_s2_eopatch_reader_and_remapping(tmp_path: Path, shared_data: Path) -> None:
    cfg = s2_cfg(tmp_path, shared_data)
    scene = ud.read_scene(cfg)
    assert scene.images.shape == (3, 101, 100, 6) and scene.images.dtype == np.float32
    assert scene.band_names == ("B02", "B03", "B04", "B08", "B11", "B12")
    np.testing.assert_allclose(scene.images[0, 50, 50], [0.0799, 0.063, 0.0382, 0.2708, 0.1299, 0.0542], atol=1e-4)
    prepared, summary = ud.prepare_scene(cfg)
    assert prepared.class_ids == [1, 2, 3, 4, 8]
    assert prepared.class_names == ["cultivated land", "forest", "grassland", "shrubland", "artificial surface"]
    assert (prepared.labels == ud.IGNORE).sum() == 155  # LULC id 0 = no label
    assert np.bincount(prepared.labels[prepared.labels >= 0]).tolist() == [11, 7601, 1777, 358, 198]
    assert prepared.labels[0, 0] == 3 and prepared.labels[2, 98] == 0 and prepared.labels[0, 42] == 4
    assert summary["stripes"] == {"train": (0, 61), "val": (61, 81), "test": (81, 101)}
    train = prepared.images[:, prepared.split == ud.SPLITS["train"]].reshape(-1, 6)
    np.testing.assert_allclose(train.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(train.std(0), 1, atol=1e-3)


def test_s2_eopatch_every_step(tmp_path: Path, shared_data: Path) -> None:
    cfg = s2_cfg(tmp_path, shared_data)
    run_all(cfg)
    root = tmp_path / "results" / "unet"
    m = json.loads((root / "evaluate" / "head_only" / "seed0" / "metrics.json").read_text())
    test = m["regions"]["test"]
    assert 0.0 <= test["mIoU"] <= 1.0 and 0.0 <= test["pixel_accuracy"] <= 1.0
    assert test["support"][0] == 0  # no cultivated land in the test stripe (rows 81-100)
    assert test["per_class_iou"][1] is not None  # forest is there
    assert sum(test["support"]) == test["pixels"]
    cm = pd.read_csv(root / "evaluate" / "head_only" / "seed0" / "confusion_test.csv")
    assert list(cm.columns) == ["true", *m["class_names"]] and cm.iloc[:, 1:].to_numpy().sum() == test["pixels"]


def test_s2_errors_name_the_file_or_key(tmp_path: Path, shared_data: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=r"nowhere/s2_eopatch/REFERENCE_SCENES\.npy not found.*"
                                                   r"unet\.data\.s2_eopatch\.path"):
        s2_cfg(tmp_path, tmp_path / "nowhere")  # the config check: before any step runs
    cfg = s2_cfg(tmp_path, shared_data)
    cfg["unet"]["data"]["s2_eopatch"]["path"] = str(tmp_path / "nowhere")
    with pytest.raises(DatasetNotFoundError, match="REFERENCE_SCENES"):
        run(cfg, "prepare")
    assert not (tmp_path / "results" / "unet" / "prepare").exists()
    with pytest.raises(ConfigError, match=r"unet\.data\.s2_eopatch\.frames: \[7\] out of range 0\.\.4"):
        run(s2_cfg(tmp_path, shared_data, data={"s2_eopatch": {"frames": [2, 7]}}), "prepare")
    with pytest.raises(DataFormatError, match=r"ids \[8\].*unet\.data\.class_ids"):
        run(s2_cfg(tmp_path, shared_data, data={"class_ids": [1, 2, 3, 4]}), "prepare")
    with pytest.raises(ConfigError, match=r"unet\.patches\.size: 12 is not divisible"):
        run(s2_cfg(tmp_path, shared_data, patches={"size": 12}), "prepare")
    assert not list((tmp_path / "results").rglob("*.npz"))


def test_patches_are_seeded_inside_the_training_stripe(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path / "r", SYNTHETIC)
    p, _ = ud.prepare_scene(cfg)

    def epochs(first: int, n: int, seed: int = 0) -> list[np.ndarray]:
        ds, steps = ud.patch_dataset(p, 16, 8, 4, seed, (1, 0), first_epoch=first)
        assert steps == 4  # 8 patches x 2 frames / batch 4
        batches = [b for b in ds.take(steps * n)]
        return [np.concatenate([b[0].numpy() for b in batches[e * steps:(e + 1) * steps]]) for e in range(n)]

    e0, e1 = epochs(0, 2)
    assert e0.shape == (16, 16, 16, 4)
    np.testing.assert_array_equal(epochs(0, 1)[0], e0)  # same (seed, epoch): same patches
    np.testing.assert_array_equal(epochs(1, 1)[0], e1)  # resumed at epoch 1: epoch 1's patches
    assert not np.array_equal(e0, e1) and not np.array_equal(epochs(0, 1, seed=1)[0], e0)
    r0, r1 = ud.stripe(p.split, "train")
    windows = [p.images[f, r:r + 16, c:c + 16] for f in range(2) for r in range(r0, r1 - 15) for c in range(49)]
    for patch in e0[:4]:
        assert any(np.array_equal(patch, w) for w in windows)  # every patch is a window of the train stripe
    ds, _ = ud.patch_dataset(p, 16, 8, 4, 0, (1, 0))
    _, y, w = next(iter(ds))
    assert set(np.unique(w.numpy())) <= {0.0, 1.0} and (y.numpy()[w.numpy() == 0] == 0).all()


def test_remap_labels_ignore_and_order() -> None:
    labels = np.array([[0, 8, 2], [4, 2, 0]])
    out, kept = ud.remap_labels(labels, [0], [])
    assert kept == [2, 4, 8] and out.tolist() == [[-1, 2, 0], [1, 0, -1]]
    out, kept = ud.remap_labels(labels, [0], [8, 4, 2])
    assert out.tolist() == [[-1, 0, 2], [1, 2, -1]]
    with pytest.raises(ConfigError, match="also in unet.data.ignore_ids"):
        ud.remap_labels(labels, [0], [0, 2, 4, 8])


def test_schema_enums_follow_the_registries_and_document_every_key() -> None:
    from rstransfer.core.fit import OPTIMIZERS
    from rstransfer.studies.unet.policies import POLICIES

    schema = get_study("unet").schema
    props = schema["properties"]
    assert props["policies"]["items"]["enum"] == list(POLICIES) == props["policies"]["default"]
    assert sorted(props["data"]["properties"]["dataset"]["enum"]) == sorted(ud.DATASETS)
    for section in ("pretrain", "finetune"):
        assert set(props[section]["properties"]["optimizer"]["enum"]) <= set(OPTIMIZERS)

    def walk(node: dict[str, Any], where: str) -> None:
        assert node.get("additionalProperties") is False, where
        for key, sub in node["properties"].items():
            assert "description" in sub and "default" in sub, f"{where}.{key}"
            if sub.get("type") == "object" and "properties" in sub:
                walk(sub, f"{where}.{key}")

    walk(schema, "unet")
    assert props["enabled"]["default"] is False
    # the thread's settings are the defaults
    cfg = make_cfg(Path("/nonexistent"), {})["unet"]
    assert (cfg["patches"]["size"], cfg["model"]["depth"], cfg["data"]["synthetic"]["bands"],
            cfg["data"]["synthetic"]["classes"]) == (256, 4, 6, 18)
    assert cfg["pretrain"] == {**cfg["pretrain"], "optimizer": "sgd", "learning_rate": 0.05, "momentum": 0.9,
                                    "weight_decay": 1e-4, "clipnorm": 0.05, "epochs": 10, "batch_size": 8}
    assert (cfg["finetune"]["learning_rate"], cfg["finetune"]["epochs"]) == (1e-4, 5)
