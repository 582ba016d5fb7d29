"""The whole DAG, as workflow CI runs it: ``snakemake --cores 2`` on the tiny config
(tests/workflow/hsi-only.yaml: every policy, one seed, one epoch), results in scratch.

One module-scoped run; the tests read what it wrote."""

from __future__ import annotations

import csv
import json
import re
import struct
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import pytest

from conftest import TINY_CONFIG, run_snakemake, tiny_settings
from rstransfer.data.splits import TEST
from rstransfer.core.policies import policy_table
from rstransfer.studies.hsi.model import build_hybridsn
from rstransfer.studies.hsi.policies import POLICIES

pytestmark = pytest.mark.slow

SETTINGS = tiny_settings(Path("unused"))
POLICY_NAMES = SETTINGS["hsi"]["policies"]
PREP = SETTINGS["hsi"]["prepare"]
INPUT_SHAPE = (PREP["window"], PREP["window"], PREP["pca_components"], 1)
TARGET_CLASSES = 4
HISTORY_COLUMNS = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds"]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    results = tmp_path_factory.mktemp("workflow") / "results"
    proc = run_snakemake("--cores", 2, "--configfile", TINY_CONFIG, results=results, timeout=1200)
    if proc.returncode != 0:
        logs = "\n".join(f"== {p}\n{p.read_text()[-2000:]}" for p in sorted((results / "logs").rglob("*.log")))
        pytest.fail(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-6000:]}\n{logs}")
    return results


def run_dir(results: Path, step: str, policy: str, seed: int = 0) -> Path:
    return results / "hsi" / step / policy / f"seed{seed}"


PRETRAIN = Path("hsi") / "pretrain" / "seed0"
TARGET = Path("hsi") / "prepare" / "synthetic_target" / "prepared.h5"
REPORT = Path("hsi") / "report"


@pytest.fixture(scope="module")
def table5_expected() -> dict[str, int]:
    rows = policy_table(POLICIES, lambda p: build_hybridsn(INPUT_SHAPE, TARGET_CLASSES, inserted_dense=p.inserted_dense))
    return {r["policy"]: r["trainable_params"] for r in rows}


@pytest.fixture(scope="module")
def n_test(results: Path) -> int:
    with h5py.File(results / TARGET, "r") as f:
        return int((f["split"][...] == TEST).sum())


def test_report_is_complete_and_self_contained(results: Path) -> None:
    index = results / REPORT / "index.html"
    text = index.read_text()
    for policy in POLICY_NAMES:
        assert policy in text
    for heading in ("Table 4", "Table 5", "Training time", "Learning curves", "Classification maps",
                    "Source model on its own test pixels", "Environment (Table 3 layout)"):
        assert heading in text
    for table_id in ("table4", "leakage", "source_model", "table5", "timing", "environment"):
        assert re.search(rf'<table[^>]*id="{table_id}"', text), table_id
    # the leakage table sits right under the accuracies
    assert text.index('id="table4"') < text.index('id="leakage"') < text.index("Table 5")
    assert 'alt="learning curves: accuracy and loss"' in text
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", text, re.I)
    assert "<script" not in text.lower() and "<link" not in text.lower()
    # images are inlined: learning curves, confusion matrices and one map per policy
    # learning curves, confusion matrices, accuracy vs cost, and one map per policy
    assert len(re.findall(r'src="data:image/png;base64,', text)) == 3 + len(POLICY_NAMES)
    assert "synthetic_source" in text and "synthetic_target" in text
    # both leakage figures of the disjoint split (default buffer: window) are reported, and are zero
    assert re.search(r"window: <b>0</b> of \d+", text)
    assert "pixels inside both a training and a test window: <b>0</b>" in text


def test_report_leakage_source_model_and_environment_tables(results: Path) -> None:
    leak = pd.read_csv(results / REPORT / "leakage.csv")
    assert list(leak["test set"]) == ["target: synthetic_target", "source (pre-training): synthetic_source"]
    assert (leak["px in train and test windows"] == 0).all()
    assert (leak["split"] == "disjoint, buffer window").all()
    assert (leak["classes removed by the buffer"] == "none").all()
    source = pd.read_csv(results / REPORT / "source_model.csv")
    src = json.loads((results / PRETRAIN / "source_test.json").read_text())
    assert source["OA (%)"].iloc[0] == pytest.approx(100 * src["OA"], abs=0.006)
    assert source["test px"].iloc[0] == src["n_test"]
    env = pd.read_csv(results / REPORT / "environment.csv")
    assert list(env.columns[:2]) == ["item", "environment 1"]
    items = dict(zip(env["item"], env["environment 1"], strict=True))
    assert items["runs"].startswith("pretrain, Original s0")
    import tensorflow as tf

    assert items["TensorFlow"] == tf.__version__ and items["GPU"]


def test_table4_has_one_row_per_policy(results: Path) -> None:
    t4 = pd.read_csv(results / REPORT / "table4_accuracy.csv")
    assert list(t4["policy"]) == POLICY_NAMES
    assert list(t4.columns) == ["policy", "OA (%)", "Kappa (%)", "AA (%)", "seeds"]
    for column in ("OA (%)", "AA (%)"):
        values = t4[column].astype(float)
        assert ((values > 0) & (values <= 100)).all(), values
    assert (t4["Kappa (%)"].astype(float) <= 100).all()
    assert (t4["seeds"] == 1).all()


def test_table5_matches_the_policy_table(results: Path, table5_expected: dict[str, int]) -> None:
    t5 = pd.read_csv(results / REPORT / "table5_parameters.csv", thousands=",")
    assert list(t5["policy"]) == POLICY_NAMES
    got = dict(zip(t5["policy"], t5["trainable params"].astype(int), strict=True))
    assert got == table5_expected
    total = dict(zip(t5["policy"], t5["total params"].astype(int), strict=True))
    assert total["Network_2"] == table5_expected["Original"]
    assert total["Network_1"] == table5_expected["Original"] + 128 * 128 + 128


def test_timing_and_summary_tables(results: Path) -> None:
    timing = pd.read_csv(results / REPORT / "timing.csv")
    assert list(timing["policy"]) == POLICY_NAMES
    assert (timing["train s"].astype(float) > 0).all()
    assert (timing["epochs"].astype(float) == 1).all()
    summary = pd.read_csv(results / REPORT / "summary.tsv", sep="\t")
    assert list(summary["policy"]) == POLICY_NAMES and (summary["seed"] == 0).all()
    assert summary["OA"].between(0, 1).all() and summary["AA"].between(0, 1).all()


@pytest.mark.parametrize("policy", list(POLICIES))
def test_evaluate_metrics(results: Path, policy: str, n_test: int) -> None:
    folder = run_dir(results, "evaluate", policy)
    m = json.loads((folder / "metrics.json").read_text())
    assert (m["policy"], m["seed"], m["model"], m["dataset"]) == (policy, 0, "hybridsn", "synthetic_target")
    cm = np.array(m["confusion_matrix"])
    assert cm.shape == (TARGET_CLASSES, TARGET_CLASSES) and (cm >= 0).all()
    assert cm.sum() == m["n_test"] == n_test > 0
    assert m["OA"] == pytest.approx(np.trace(cm) / cm.sum())
    assert len(m["per_class_accuracy"]) == len(m["class_names"]) == TARGET_CLASSES
    assert m["support"] == cm.sum(axis=1).tolist()
    assert 0 <= m["AA"] <= 1 and -1 <= m["Kappa"] <= 1
    assert m["split"] == "disjoint" and m["leakage"]["test_pixels_with_train_in_window"] == 0
    assert m["leakage"]["shared_pixels_train_test"] == 0 and m["buffer"]["buffer"] == "window"
    # the CSVs say the same as the JSON
    with open(folder / "confusion.csv") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["true\\pred", *m["class_names"]]
    assert [[int(v) for v in r[1:]] for r in rows[1:]] == cm.tolist()
    per_class = pd.read_csv(folder / "per_class.csv")
    assert list(per_class["class"]) == m["class_names"]
    assert list(per_class["support"]) == m["support"]


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.mark.parametrize("policy", ["Original", "Network_5"])
def test_map_png(results: Path, policy: str) -> None:
    import matplotlib.image as mpimg

    path = run_dir(results, "evaluate", policy) / "map.png"
    width, height = _png_size(path)
    assert 300 <= width <= 3000 and 200 <= height <= 3000
    img = mpimg.imread(path)
    assert img.shape[:2] == (height, width)
    colours = np.unique(img[..., :3].reshape(-1, 3), axis=0)
    assert len(colours) > 5  # not a blank canvas: classes, legend, titles


@pytest.mark.parametrize("step,policy", [("pretrain", None), *[("finetune", p) for p in POLICIES]])
def test_history_csv(results: Path, step: str, policy: str | None) -> None:
    folder = results / PRETRAIN if step == "pretrain" else run_dir(results, step, policy)
    history = pd.read_csv(folder / "history.csv")
    assert list(history.columns) == HISTORY_COLUMNS
    assert list(history["epoch"]) == [1]
    assert np.isfinite(history.to_numpy(dtype=float)).all()
    assert (history[["loss", "val_loss"]] > 0).all().all()
    assert history[["accuracy", "val_accuracy"]].stack().between(0, 1).all()
    assert (history["seconds"] > 0).all()


def test_pretrain_scores_the_source_model_on_its_own_test_pixels(results: Path) -> None:
    src = json.loads((results / PRETRAIN / "source_test.json").read_text())
    with h5py.File(results / "hsi" / "prepare" / "synthetic_source" / "prepared.h5", "r") as f:
        n_source_test = int((f["split"][...] == TEST).sum())
    cm = np.array(src["confusion_matrix"])
    assert src["dataset"] == "synthetic_source" and cm.shape == (8, 8)
    assert cm.sum() == src["n_test"] == n_source_test > 0
    assert src["OA"] == pytest.approx(np.trace(cm) / cm.sum())
    assert src["leakage"]["shared_pixels_train_test"] == 0
    info = json.loads((results / PRETRAIN / "train.json").read_text())
    assert info["source_test"]["OA"] == src["OA"]
    assert {"tensorflow", "keras", "horovod", "gpu_model", "node"} <= set(info["environment"])
    per_class = pd.read_csv(results / PRETRAIN / "source_per_class.csv")
    assert list(per_class["support"]) == src["support"]


@pytest.mark.parametrize("policy", list(POLICIES))
def test_train_json(results: Path, policy: str, table5_expected: dict[str, int]) -> None:
    info = json.loads((run_dir(results, "finetune", policy) / "train.json").read_text())
    assert info["policy"] == policy and info["step"] == "finetune" and info["epochs_run"] == 1
    assert info["trainable_params"] == table5_expected[policy]
    if policy == "Original":
        assert info["copied_layers"] == [] and info["pretrained"] is None
    else:
        # the head is never copied by default (and here 8 source vs. 4 target classes)
        assert set(info["copied_layers"]) == {"conv3d_1", "conv3d_2", "conv3d_3", "conv2d_1", "dense_1", "dense_2"}
        assert info["pretrained"].endswith("hsi/pretrain/seed0")


@pytest.fixture(scope="module")
def pretrained(results: Path) -> Any:
    from rstransfer.core.fit import load_model

    return load_model(results / PRETRAIN / "model.keras")


@pytest.mark.parametrize("policy", ["Network_2", "Network_6", "Network_7"])
def test_frozen_layers_keep_the_pretrained_weights(results: Path, pretrained: Any, policy: str) -> None:
    from rstransfer.core.fit import load_model

    model = load_model(run_dir(results, "finetune", policy) / "model.keras")
    trainable = set(POLICIES[policy].trainable)
    for layer in model.layers:
        if not layer.weights or layer.name == "dense_3":
            continue
        same = all(
            np.array_equal(a, b) for a, b in zip(layer.get_weights(), pretrained.get_layer(layer.name).get_weights(), strict=True)
        )
        if layer.name in trainable:
            assert not same, f"{layer.name} should have been fine-tuned under {policy}"
        else:
            assert same, f"{layer.name} is frozen under {policy} but differs from the pretrained weights"


def test_scene_map_equals_per_pixel_predictions(results: Path) -> None:
    from rstransfer.data.patches import reference_patches
    from rstransfer.data.prepare import load_prepared
    from rstransfer.studies.hsi.evaluate import predict_pixels, predict_scene
    from rstransfer.core.metrics import confusion_matrix
    from rstransfer.core.fit import load_model

    prepared = load_prepared(results / TARGET)
    model = load_model(run_dir(results, "finetune", "Network_5") / "model.keras")
    scene = predict_scene(model, prepared, 512)
    h, w = prepared.labels.shape
    assert scene.shape == (h, w) and scene.min() >= 1 and scene.max() <= TARGET_CLASSES

    rows = np.array([0, 0, h - 1, h - 1, h // 2, 3, h - 2])
    cols = np.array([0, w - 1, 0, w - 1, w // 2, 40, 5])
    patches = reference_patches(prepared.cube, rows, cols, prepared.window)[..., None]
    single = np.argmax(model.predict(patches, batch_size=1, verbose=0), axis=-1) + 1
    np.testing.assert_array_equal(scene[rows, cols], single)

    # the test-pixel confusion matrix of evaluate is reproduced from the scene map
    trows, tcols, y_true = prepared.pixels(TEST)
    m = json.loads((run_dir(results, "evaluate", "Network_5") / "metrics.json").read_text())
    from_map = confusion_matrix(y_true, scene[trows, tcols] - 1, prepared.n_classes)
    np.testing.assert_array_equal(from_map, np.array(m["confusion_matrix"]))
    np.testing.assert_array_equal(predict_pixels(model, prepared, trows, tcols, 512), scene[trows, tcols] - 1)


def test_logs_and_benchmarks_for_every_job(results: Path) -> None:
    logs = sorted(p.relative_to(results / "logs").as_posix() for p in (results / "logs").rglob("*.log"))
    assert len(logs) == 2 + 1 + 8 + 8 + 1 + 1  # prepare, pretrain, finetune, evaluate, report, report index
    finetune_log = (results / "logs" / "hsi_finetune" / "Network_3" / "seed0.log").read_text()
    assert "finetuned Network_3 seed 0" in finetune_log
    bench = pd.read_csv(results / "benchmarks" / "hsi_pretrain" / "seed0.tsv", sep="\t")
    assert len(bench) == 1 and bench["s"].iloc[0] > 0


def test_outputs_get_the_usual_file_mode(results: Path) -> None:
    """Files appear by rename from a temporary file; they must not keep mkstemp's 0600."""
    import os

    umask = os.umask(0)
    os.umask(umask)
    expected = 0o666 & ~umask
    modes = {p.relative_to(results).as_posix(): p.stat().st_mode & 0o777 for p in results.rglob("*") if p.is_file()}
    assert len(modes) > 100
    assert {path: oct(mode) for path, mode in modes.items() if mode != expected} == {}


def test_no_temporary_files_are_left(results: Path) -> None:
    # Snakemake marks directory outputs with .snakemake_timestamp; nothing else is hidden
    leftovers = [p for p in results.rglob("*")
                 if ".tmp" in p.name or (p.name.startswith(".") and p.name != ".snakemake_timestamp")]
    assert leftovers == []


def test_rerun_does_nothing(results: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in results.rglob("*") if p.is_file()}
    proc = run_snakemake("--cores", 2, "--configfile", TINY_CONFIG, results=results)
    assert proc.returncode == 0, proc.stdout
    assert "Nothing to be done" in proc.stdout, proc.stdout
    after = {p: p.stat().st_mtime_ns for p in results.rglob("*") if p.is_file()}
    assert after == before  # not even the effective config was rewritten
