"""The multilabel study end to end through ``run_step``: the generated set (tiny), the real
shared UC Merced images (tiny), round-level resume, and bad input leaving nothing behind."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from rstransfer.core.config import validate
from rstransfer.core.errors import DataFormatError
from rstransfer.core.paths import Layout
from rstransfer.core.study import run_step
from rstransfer.studies import get_study

pytestmark = pytest.mark.filterwarnings("ignore:non-integer arguments to randrange:DeprecationWarning")

TINY = {
    "enabled": True,
    "dataset": "synthetic",
    "synthetic": {"per_class": 4},
    "image_size": 32,
    "scenarios": {"run": [1, 2], "remove_per_class": [0, 1]},
    "backbone": {"blocks": [1, 1, 1, 1]},
    "byol": {"epochs": 1, "batch_size": 16, "hidden": 16, "dim": 8},
    "active": {"initial": 6, "batch": 4, "budget": 14, "candidates": 8, "runs": 1},
    "finetune": {"epochs": 2, "optimizer": "adam", "learning_rate": 0.001, "lr_drop_epoch": 1, "predict_batch": 32},
    "report": {"label_points": [10, 14]},
}


def make_cfg(results: Path, section: dict[str, Any], **top: Any) -> dict[str, Any]:
    return validate({"results": str(results), "deterministic": True, "hsi": {"enabled": False},
                     "segmentation": {"enabled": False}, "multilabel": section, **top})


@contextlib.contextmanager
def tf_threads_untouched() -> Iterator[None]:
    """Steps leave TensorFlow's thread pools alone (threads=None, no RSTRANSFER_THREADS): an
    earlier test in this process may have started TensorFlow, after which they cannot change."""
    saved = os.environ.pop("RSTRANSFER_THREADS", None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ["RSTRANSFER_THREADS"] = saved


def run_all(cfg: dict[str, Any]) -> tuple[Layout, dict[str, list[dict[str, Any]]]]:
    study, layout = get_study("multilabel"), Layout.from_config(cfg)
    summaries: dict[str, list[dict[str, Any]]] = {}
    with tf_threads_untouched():
        for step in ("prepare", "pretrain", "finetune", "evaluate", "report"):
            summaries[step] = [run_step(cfg, study, step, run, layout) for run in study.runs(cfg, step)]
    return layout, summaries


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Layout, dict[str, Any]]:
    cfg = make_cfg(tmp_path_factory.mktemp("ml") / "results", TINY)
    layout, summaries = run_all(cfg)
    return cfg, layout, summaries



def stop_in_second_round(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The second query of an active-learning job raises, as a time limit would mid-job;
    returns the real query function (to put back)."""
    from rstransfer.studies.multilabel import finetune

    real_select, calls = finetune.select, []

    def failing_select(*args: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("time limit")
        return real_select(*args)

    monkeypatch.setattr(finetune, "select", failing_select)
    return real_select


def test_generated_set_end_to_end(synthetic_run: tuple[dict[str, Any], Layout, dict[str, Any]]) -> None:
    from rstransfer.models.densenet import build_densenet_encoder

    cfg, layout, summaries = synthetic_run
    prep = json.loads(Path(layout.run_dir("multilabel", "prepare", file="prepare.json")).read_text())
    assert prep["images"] == 84 and prep["split"] == {"val": 21, "test": 21, "pool": 42}
    scenarios = json.loads(Path(layout.run_dir("multilabel", "prepare", file="scenarios.json")).read_text())
    assert len(scenarios["2"]["pool"]) == 42 - 3 and len(scenarios["2"]["minority"]) == 3

    # the features study rebuilds the BYOL encoder from train.json + encoder.weights.h5
    pre = Path(layout.run_dir("multilabel", "pretrain"))
    record = json.loads((pre / "train.json").read_text())
    assert record["encoder"] == {"input_shape": [32, 32, 3], "weights": None, "blocks": [1, 1, 1, 1],
                                 "pooling": "avg", "name": "encoder"}
    assert record["final_tau"] == pytest.approx(1.0) and record["epochs_run"] == 1
    encoder = build_densenet_encoder(**record["encoder"])
    fresh = [w.copy() for w in encoder.get_weights()]
    encoder.load_weights(str(pre / "encoder.weights.h5"))
    assert any(not np.allclose(a, b) for a, b in zip(fresh, encoder.get_weights(), strict=True))

    initial = {}
    for s in summaries["finetune"]:
        job = Path(layout.run_dir("multilabel", "finetune", f"{s['strategy']}/scenario{s['scenario']}/run{s['run']}"))
        lab = json.loads((job / "labelled.json").read_text())
        assert lab["sizes"] == [6, 10, 14]
        order = lab["order"]
        assert len(order) == len(set(order)) == 14 and set(order) <= set(scenarios[str(s["scenario"])]["pool"])
        initial.setdefault(s["scenario"], set(order[:6]))
        assert set(order[:6]) == initial[s["scenario"]]  # every strategy starts from the same labels
        with np.load(job / "probs.npz") as z:
            assert z["test"].shape == (3, 21, 17) and z["val"].shape == (3, 21, 17)
            assert 0 <= z["test"].min() and z["test"].max() <= 1
        rounds = pd.read_csv(job / "rounds.csv")
        assert rounds["n_labelled"].tolist() == [6, 10, 14] and (rounds["query_seconds"][:2] > 0).all()
    assert len(summaries["finetune"]) == 6

    for s in summaries["evaluate"]:
        assert [r["n_labelled"] for r in s["rounds"]] == [6, 10, 14]
        for r in s["rounds"]:
            assert 0 <= r["micro_f1"] <= 1 and 0 <= r["macro_f1"] <= 1 and 0 <= r["mAP"] <= 1
            assert len(r["per_label_f1"]) == 17

    rep = Path(layout.run_dir("multilabel", "report"))
    html = (rep / "index.html").read_text()
    for heading in ("F1 at N labels", "Label efficiency", "Minority-label F1", "Macro-F1 gain"):
        assert heading in html
    assert "data:image/png;base64" in html and "http" not in html.replace("https://", "").split("<body>")[0]
    curve = pd.read_csv(rep / "f1_vs_labels.csv")
    assert set(curve["strategy"]) == {"random", "mge", "mge_clustering"} and set(curve["scenario"]) == {1, 2}
    assert len(curve) == 3 * 2 * 3
    eff = pd.read_csv(rep / "label_efficiency.csv")
    assert (eff[eff["strategy"] == "random"]["labels to reach (macro-F1)"].astype(int) <= 14).all()
    gains = pd.read_csv(rep / "gains.csv")
    assert set(gains["strategy"]) == {"mge", "mge_clustering"} and set(gains["labels"]) == {10, 14}
    minority = pd.read_csv(rep / "minority_f1.csv")
    assert set(scenarios["2"]["minority"]) <= set(minority.columns)
    for name in ("f1_at_labels", "byol_loss"):
        assert (rep / f"{name}.csv").is_file()


def test_rounds_resume_after_an_interruption(synthetic_run: tuple[dict[str, Any], Layout, dict[str, Any]],
                                             tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rstransfer.studies.multilabel import finetune

    cfg, layout, _ = synthetic_run
    study, run = get_study("multilabel"), {"strategy": "mge", "scenario": 2, "run": 0}
    out = tmp_path / "job"
    real_select = stop_in_second_round(monkeypatch)
    monkeypatch.delenv("RSTRANSFER_THREADS", raising=False)
    with pytest.raises(KeyboardInterrupt):
        run_step(cfg, study, "finetune", run, layout, out=out)
    assert not out.exists()
    state = json.loads((tmp_path / ".job.checkpoint" / "rounds" / "state.json").read_text())
    assert len(state["rounds"]) == 1 and len(state["labelled"]) == 10
    monkeypatch.setattr(finetune, "select", real_select)
    run_step(cfg, study, "finetune", run, layout, out=out)
    reference = Path(layout.run_dir("multilabel", "finetune", "mge/scenario2/run0"))
    assert json.loads((out / "labelled.json").read_text()) == json.loads((reference / "labelled.json").read_text())
    with np.load(out / "probs.npz") as a, np.load(reference / "probs.npz") as b:
        np.testing.assert_allclose(a["test"], b["test"], atol=1e-6)


def test_bad_label_file_writes_nothing(tmp_path: Path, shared_data: Path) -> None:
    labels = tmp_path / "LandUse_Multilabeled.txt"
    real = shared_data / "ucmerced_multilabel" / "multilabels" / "LandUse_Multilabeled.txt"
    labels.write_text("".join(line for line in real.read_text().splitlines(keepends=True)
                              if not line.startswith("harbor07")))
    section = {**TINY, "dataset": "ucmerced", "images": str(shared_data / "ucmerced" / "Images"), "labels": str(labels)}
    cfg = make_cfg(tmp_path / "results", section)
    study, layout = get_study("multilabel"), Layout.from_config(cfg)
    with pytest.raises(DataFormatError, match="no label row for image 'harbor07'"):
        run_step(cfg, study, "prepare", {}, layout)
    assert not (tmp_path / "results" / "multilabel" / "prepare").exists()
    assert not list((tmp_path / "results" / "multilabel").glob(".*staging"))


def test_real_shared_images_end_to_end(tmp_path: Path, shared_data: Path) -> None:
    section = {
        **TINY, "dataset": "ucmerced", "images": "ucmerced/Images",
        "labels": "ucmerced_multilabel/multilabels/LandUse_Multilabeled.txt",
        "scenarios": {"run": [3], "remove_per_class": [0, 2, 4]},
        "active": {"strategies": ["mge_clustering"], "initial": 20, "batch": 10, "budget": 30, "candidates": 20, "runs": 1},
        "report": {"label_points": [20, 30]},
    }
    cfg = make_cfg(tmp_path / "results", section, data_root=str(shared_data))
    layout, summaries = run_all(cfg)
    prep = summaries["prepare"][0]
    assert prep["images"] == 420 and prep["split"] == {"val": 105, "test": 105, "pool": 210}
    assert prep["label_counts"]["pool"]["airplane"] == 10  # 20 airplane images per class, half in the pool
    minority = prep["scenarios"]["3"]["minority"]
    assert len(minority) == 3 and not {"dock", "ship"} <= set(minority) and prep["scenarios"]["3"]["pool"] == 210 - 12
    ev = summaries["evaluate"][0]
    assert [r["n_labelled"] for r in ev["rounds"]] == [20, 30]
    assert all(r["support"][ev["label_names"].index("airplane")] == 5 for r in ev["rounds"])
    html = Path(layout.run_dir("multilabel", "report", file="index.html")).read_text()
    assert "ucmerced" in html and "mge_clustering" in html
