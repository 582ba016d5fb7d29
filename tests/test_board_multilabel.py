"""The multilabel study's competition task (predictions at the label budget, scored by the
organiser) and the SLURM job ids a resumed training run records (core.fit, the AL rounds)."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rstransfer.core.config import validate
from rstransfer.core.paths import Layout
from rstransfer.data.ucmerced import LABEL_NAMES
from rstransfer.leaderboard.tasks import SubmissionError, Truth
from rstransfer.studies.multilabel.board import TASKS

pytestmark = pytest.mark.filterwarnings("ignore:non-integer arguments to randrange:DeprecationWarning")

TASK = TASKS["multilabel"]
from test_multilabel_workflow import TINY, stop_in_second_round  # noqa: E402  the workflow test's tiny study


def make_cfg(results: Path, **section: Any) -> dict[str, Any]:
    ml = {**TINY, **section}
    return validate({"results": str(results), "deterministic": True, "hsi": {"enabled": False},
                     "segmentation": {"enabled": False}, "multilabel": ml})


# ------------------------------------------------------------------------------ score
def truth_of(names: list[str], labels: np.ndarray, label_names: list[str]) -> Truth:
    return Truth(meta={"benchmark": "test", "budget": 14, "label_names": label_names},
                 arrays={"names": np.array(names, dtype="U"), "labels": labels.astype(np.uint8)})


Y = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1]], dtype=np.uint8)
P = np.array([[1, 0, 0], [0, 1, 0], [0, 1, 1], [0, 0, 0]], dtype=np.uint8)
NAMES = ["a00", "b01", "c02", "d03"]
SMALL = truth_of(NAMES, Y, ["x", "y", "z"])


def test_perfect_labels_score_one() -> None:
    out = TASK.score({"names": np.array(NAMES), "labels": Y.copy()}, SMALL)
    assert out["scores"] == {"macro_f1": 1.0, "micro_f1": 1.0, "sample_f1": 1.0}
    assert out["confusion_matrix"] is None and out["per_class"] == {"x": 1.0, "y": 1.0, "z": 1.0}


def test_hand_computed_scores_with_rows_in_another_order() -> None:
    # x: tp 1, fn 1 -> 2/3; y: tp 2 -> 1; z: fp 1, fn 1 -> 0. micro: tp 3, fp 1, fn 2 -> 6/9.
    # per image: 1, 2/3, 2/3, 0 -> 7/12
    order = [3, 1, 0, 2]
    out = TASK.score({"names": np.array(NAMES)[order], "labels": P[order].astype(bool)}, SMALL)
    assert out["scores"]["macro_f1"] == pytest.approx(5 / 9)
    assert out["scores"]["micro_f1"] == pytest.approx(2 / 3)
    assert out["scores"]["sample_f1"] == pytest.approx(7 / 12)
    assert out["per_class"] == pytest.approx({"x": 2 / 3, "y": 1.0, "z": 0.0})


def test_label_absent_everywhere_has_no_f1() -> None:
    y = np.array([[1, 0], [0, 0]], dtype=np.uint8)
    out = TASK.score({"names": np.array(["p", "q"]), "labels": y.astype(np.int64)}, truth_of(["p", "q"], y, ["u", "v"]))
    assert out["per_class"] == {"u": 1.0, "v": None} and out["scores"]["macro_f1"] == 1.0


@pytest.mark.parametrize("arrays,message", [
    ({"names": np.array(NAMES[:3]), "labels": P[:3]}, "1 test image(s) missing, 0 not in the test set"),
    ({"names": np.array([*NAMES, "e04"]), "labels": np.vstack([P, P[:1]])}, "0 test image(s) missing, 1 not in"),
    ({"names": np.array(["a00", "a00", "c02", "d03"]), "labels": P}, "1 duplicated image name"),
    ({"names": np.array(NAMES).astype(object), "labels": P}, "names: expected a 1-D text array"),
    ({"names": np.array(NAMES), "labels": P[:, :2]}, "labels: shape 4x2, the test set needs 4x3"),
    ({"names": np.array(NAMES), "labels": P.reshape(-1)}, "labels: shape 12, the test set needs 4x3"),
    ({"names": np.array(NAMES), "labels": P * 2}, "values must be 0 or 1, found 2"),
    ({"names": np.array(NAMES), "labels": P - 1}, "values must be 0 or 1"),
    ({"names": np.array(NAMES), "labels": P.astype(np.float32)}, "labels: expected a 0/1 integer or boolean array"),
    ({"names": np.array(NAMES), "labels": P, "probs": P.astype(float)}, "expected exactly labels, names"),
    ({"names": np.array(NAMES)}, "expected exactly labels, names"),
])
def test_bad_submissions_are_refused(arrays: dict[str, np.ndarray], message: str) -> None:
    with pytest.raises(SubmissionError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        TASK.score(arrays, SMALL)
    assert "\n" not in str(err.value)


# ------------------------------------------------------- participant and organiser sides
N_IMAGES, TEST = 12, np.array([9, 2, 5, 7, 0])


def write_prepare(folder: Path, seed: int = 0) -> np.ndarray:
    """scenes.npz as prepare_step writes it (random 0/1 labels); returns all multilabels."""
    rng = np.random.default_rng(seed)
    labels = (rng.random((N_IMAGES, 17)) < 0.3).astype(np.uint8)
    folder.mkdir(parents=True)
    with open(folder / "scenes.npz", "wb") as fh:
        np.savez(fh, images=np.zeros((N_IMAGES, 4, 4, 3), np.uint8), multilabels=labels,
                 class_ids=np.arange(N_IMAGES) % 3, names=np.array([f"scene{i:02d}" for i in range(N_IMAGES)]),
                 classes=np.array(["a", "b", "c"]), label_names=np.array(LABEL_NAMES),
                 val=np.array([1, 3, 4]), test=TEST, pool=np.array([6, 8, 10, 11]))
    (folder / "prepare.json").write_text(json.dumps({"dataset": "synthetic", "images": N_IMAGES}))
    return labels


def write_job(layout: Layout, job: str, sizes: list[int], seed: int = 1, **train: Any) -> np.ndarray:
    """A finetune job folder (train.json, probs.npz as write_outputs writes them) and its
    evaluate folder (metrics.json); returns the test probabilities per round."""
    strategy, scenario, run = job.split("/")
    folder = Path(layout.run_dir("multilabel", "finetune", job))
    folder.mkdir(parents=True)
    probs = np.random.default_rng(seed).random((len(sizes), len(TEST), 17)).astype(np.float32)
    with open(folder / "probs.npz", "wb") as fh:
        np.savez(fh, test=probs, val=probs[:, :3])
    record = {
        "step": "finetune", "strategy": strategy, "scenario": int(scenario[8:]), "run": int(run[3:]),
        "rounds": len(sizes), "sizes": sizes,
        "encoder": {"input_shape": [32, 32, 3], "weights": None, "blocks": [6, 12, 24, 16], "pooling": "avg"},
        "train_seconds": 12.5, "query_seconds": 1.0, "gpu_hours": 0.01, "trainable_params": 100, "total_params": 120,
        "slurm_job_ids": ["77", "78"], "final_test_micro_f1": 0.5, "final_test_macro_f1": 0.4, **train,
    }
    (folder / "train.json").write_text(json.dumps({k: v for k, v in record.items() if v is not None}))
    ev = Path(layout.run_dir("multilabel", "evaluate", job))
    ev.mkdir(parents=True)
    (ev / "metrics.json").write_text(json.dumps({"strategy": strategy, "scenario": record["scenario"],
                                                 "run": record["run"], "rounds": []}))
    return probs


@pytest.fixture()
def board(tmp_path: Path) -> dict[str, Any]:
    cfg = make_cfg(tmp_path / "results")
    layout = Layout.from_config(cfg)
    labels = write_prepare(Path(layout.run_dir("multilabel", "prepare")))
    return {"cfg": cfg, "layout": layout, "labels": labels}


def test_runs_inputs_and_truth_inputs(board: dict[str, Any]) -> None:
    cfg, layout = board["cfg"], board["layout"]
    runs = TASK.runs(cfg, layout)
    assert len(runs) == 3 * 2 and f"{cfg['results']}/multilabel/evaluate/mge_clustering/scenario2/run0" in runs
    assert TASK.inputs(cfg, layout) == [f"{cfg['results']}/multilabel/report", *runs]
    assert TASK.truth_inputs(cfg, layout) == [f"{cfg['results']}/multilabel/prepare"]
    from rstransfer.leaderboard.tasks import active_tasks

    assert "multilabel" in active_tasks(cfg) and "multilabel" not in active_tasks(make_cfg(Path("r"), enabled=False))


def test_truth_round_trip(board: dict[str, Any]) -> None:
    truth = TASK.truth(board["cfg"], board["layout"])
    assert truth.meta == {"benchmark": "generated multi-label test set, 5 images, at 14 labels", "budget": 14,
                          "label_names": list(LABEL_NAMES)}
    assert truth.arrays["names"].dtype.kind == "U" and truth.arrays["labels"].dtype == np.uint8
    assert truth.arrays["names"].tolist() == [f"scene{i:02d}" for i in TEST]
    np.testing.assert_array_equal(truth.arrays["labels"], board["labels"][TEST])
    out = TASK.score({k: v.copy() for k, v in truth.arrays.items()}, truth)
    assert out["scores"]["macro_f1"] == 1.0 and list(out["per_class"]) == list(LABEL_NAMES)
    ucm = TASK.truth(make_cfg(Path(board["cfg"]["results"]), dataset="ucmerced"), board["layout"])
    assert ucm.meta["benchmark"] == "UC Merced multi-label test set, 5 images, at 14 labels"


def test_predictions_take_the_budget_round(board: dict[str, Any]) -> None:
    from rstransfer.core.metrics import multilabel_scores

    cfg, layout = board["cfg"], board["layout"]
    probs = write_job(layout, "mge/scenario2/run0", [6, 10, 14, 18])  # budget 14: round 2 of 4
    run = Path(layout.run_dir("multilabel", "evaluate", "mge/scenario2/run0"))
    pred = TASK.predictions(run, cfg, layout)
    assert pred.meta == {
        "entry": "mge scenario 2 run 0",
        "model": "DenseNet121 BYOL + sigmoid head",
        "details": {"strategy": "mge", "scenario": 2, "run": 0, "n_labelled": 14},
        "cost": {"train_seconds": 12.5, "gpu_hours": 0.01, "trainable_params": 100, "total_params": 120,
                 "slurm_job_ids": ["77", "78"]},
    }
    assert set(pred.arrays) == {"names", "labels"}
    assert pred.arrays["names"].dtype.kind == "U" and pred.arrays["labels"].dtype == np.uint8
    assert pred.arrays["names"].tolist() == [f"scene{i:02d}" for i in TEST]
    np.testing.assert_array_equal(pred.arrays["labels"], (probs[2] >= 0.5).astype(np.uint8))
    assert not np.array_equal(pred.arrays["labels"], (probs[3] >= 0.5).astype(np.uint8))
    # the organiser's score = the study's own F1 of that round (evaluate step, same threshold)
    out = TASK.score(pred.arrays, TASK.truth(cfg, layout))
    expected = multilabel_scores(board["labels"][TEST], probs[2], 0.5)
    for key in ("macro_f1", "micro_f1", "sample_f1"):
        assert out["scores"][key] == pytest.approx(expected[key])
    # another threshold labels more
    low = TASK.predictions(run, make_cfg(Path(cfg["results"]), active={**TINY["active"], "threshold": 0.1}), layout)
    np.testing.assert_array_equal(low.arrays["labels"], (probs[2] >= 0.1).astype(np.uint8))


def test_predictions_refuse_a_job_without_the_budget_round(board: dict[str, Any]) -> None:
    cfg, layout = board["cfg"], board["layout"]
    write_job(layout, "random/scenario1/run0", [6, 10, 12])
    run = Path(layout.run_dir("multilabel", "evaluate", "random/scenario1/run0"))
    with pytest.raises(SubmissionError, match=r"no round at the budget of 14 labels \(sizes \[6, 10, 12\]\)"):
        TASK.predictions(run, cfg, layout)
    # the same job is fine for a config whose budget it reached
    cfg12 = make_cfg(Path(cfg["results"]), active={**TINY["active"], "budget": 12})
    assert TASK.predictions(run, cfg12, layout).meta["details"]["n_labelled"] == 12


@pytest.mark.parametrize("job,train,message", [
    ("mge/scenario1/run0", {"gpu_hours": None}, "missing key 'gpu_hours'"),
    ("mge/scenario1/run0", {"trainable_params": None}, "missing key 'trainable_params'"),
    ("mge/scenario1/run0", {"scenario": 2}, "scenario 2 is not the job's 1"),
    ("mge/scenario3/run0", {}, "mge/scenario3/run0 is not a job of the config"),
    ("mge/scenario1/run4", {}, "is not a job of the config"),
])
def test_predictions_refuse_bad_jobs(board: dict[str, Any], job: str, train: dict[str, Any], message: str) -> None:
    cfg, layout = board["cfg"], board["layout"]
    write_job(layout, job, [6, 10, 14], **train)
    with pytest.raises(SubmissionError, match=message):
        TASK.predictions(Path(layout.run_dir("multilabel", "evaluate", job)), cfg, layout)


def test_predictions_need_the_evaluated_run_and_matching_probs(board: dict[str, Any]) -> None:
    cfg, layout = board["cfg"], board["layout"]
    write_job(layout, "mge/scenario1/run0", [6, 10, 14])
    run = Path(layout.run_dir("multilabel", "evaluate", "mge/scenario1/run0"))
    (run / "metrics.json").unlink()
    with pytest.raises(SubmissionError, match="metrics.json: not found"):
        TASK.predictions(run, cfg, layout)
    write_job(layout, "random/scenario1/run0", [6, 10, 14])
    ft = Path(layout.run_dir("multilabel", "finetune", "random/scenario1/run0"))
    with open(ft / "probs.npz", "wb") as fh:
        np.savez(fh, test=np.zeros((3, 4, 17), np.float32), val=np.zeros((3, 3, 17), np.float32))
    with pytest.raises(SubmissionError, match="lack round 2 of 5 test images x 17 labels"):
        TASK.predictions(Path(layout.run_dir("multilabel", "evaluate", "random/scenario1/run0")), cfg, layout)


def test_model_name_of_a_smaller_densenet(board: dict[str, Any]) -> None:
    cfg, layout = board["cfg"], board["layout"]
    write_job(layout, "mge/scenario1/run0", [6, 10, 14], encoder={"blocks": [1, 1, 1, 1]})
    pred = TASK.predictions(Path(layout.run_dir("multilabel", "evaluate", "mge/scenario1/run0")), cfg, layout)
    assert pred.meta["model"] == "DenseNet 1-1-1-1 BYOL + sigmoid head"


def test_task_is_registered() -> None:
    from rstransfer.leaderboard.tasks import all_tasks

    assert all_tasks()["multilabel"] is TASK
    assert TASK.metric == "macro_f1" and TASK.metric in dict(TASK.columns)


# ------------------------------------------------------------------------ SLURM job ids
def test_slurm_job_ids_helper() -> None:
    from rstransfer.core.checkpoint import slurm_job_ids

    rows = [{"slurm_job": "100"}, {"slurm_job": "99"}, {"slurm_job": ""}, {"epoch": 4}, {"slurm_job": "100"}]
    assert slurm_job_ids(rows, "1000", "local", "") == ["99", "100", "1000"]
    assert slurm_job_ids([]) == []


def _tiny_fit(ckpt: Path, extra: list[Any] | None = None) -> dict[str, Any]:
    import tensorflow as tf

    from rstransfer.core import dist as dist_mod
    from rstransfer.core.fit import compile_model, fit
    from rstransfer.core.keras import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.layers.Input((3,)), keras.layers.Dense(2)])
    fit_cfg = {"epochs": 5, "batch_size": 4, "optimizer": "sgd", "learning_rate": 0.01, "monitor": "none", "patience": 100}
    dist = dist_mod.init("none")
    compile_model(model, fit_cfg, dist, loss="mse", metrics=[])
    x = np.random.default_rng(0).random((8, 3)).astype(np.float32)
    data = tf.data.Dataset.from_tensor_slices((x, x[:, :2])).batch(4).repeat()
    return fit(model, lambda first: {"train": data, "val": None, "steps": 2, "val_steps": None}, fit_cfg, 0, ckpt,
               dist, {"test": "slurm"}, reseed=False, extra_callbacks=extra)


def test_fit_resumed_in_another_slurm_job_records_both(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fit stopped by SLURM's signal in job 4100 and resumed in job 4117 names both jobs."""
    from rstransfer.core.checkpoint import TrainingInterrupted
    from rstransfer.core.fit import history_csv
    from rstransfer.core.keras import keras

    class SignalAfterEpoch2(keras.callbacks.Callback):  # SLURM's --signal=USR1@... arriving mid-fit
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if epoch == 1:
                os.kill(os.getpid(), signal.SIGUSR1)

    ckpt = tmp_path / "ckpt"
    monkeypatch.setenv("SLURM_JOB_PARTITION", "gpu")  # no scontrol lookup
    monkeypatch.setenv("SLURM_JOB_ID", "4100")
    with pytest.raises(TrainingInterrupted):
        _tiny_fit(ckpt, [SignalAfterEpoch2()])
    state = json.loads((ckpt / (ckpt / "latest").read_text().strip() / "state.json").read_text())
    assert [r["slurm_job"] for r in state["rows"]] == ["4100", "4100"]  # the checkpoint carries the ids

    monkeypatch.setenv("SLURM_JOB_ID", "4117")
    record = _tiny_fit(ckpt)
    assert record["resumed_after_epoch"] == 2 and record["epochs_run"] == 5
    assert [r["slurm_job"] for r in record["_rows"]] == ["4100", "4100", "4117", "4117", "4117"]
    assert record["slurm_job_ids"] == ["4100", "4117"] and record["run"]["slurm_job_id"] == "4117"
    header = next(csv.reader(io.StringIO(history_csv(record["_rows"]))))
    assert header == ["epoch", "loss", "seconds"]


def test_fit_outside_slurm_records_no_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    record = _tiny_fit(tmp_path / "ckpt")
    assert record["slurm_job_ids"] == [] and record["run"]["slurm_job_id"] == "local"


# --------------------------------------------- the real study: rounds over two SLURM jobs
def test_finetune_rounds_over_two_slurm_jobs_then_submit_and_score(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """prepare, pretrain, one AL job stopped after round 0 in SLURM job 501 and finished in job
    502: train.json names both jobs and the cost fields; the task then turns the real folders
    into a prediction whose score is the evaluate step's macro-F1 at the budget."""
    from rstransfer.core.study import run_step
    from rstransfer.studies.multilabel import STUDY, finetune

    cfg = make_cfg(tmp_path / "results", scenarios={"run": [1], "remove_per_class": [0]},
                   active={**TINY["active"], "strategies": ["mge"]})
    layout = Layout.from_config(cfg)
    monkeypatch.delenv("RSTRANSFER_THREADS", raising=False)
    monkeypatch.setenv("SLURM_JOB_PARTITION", "gpu")
    monkeypatch.setenv("SLURM_JOB_ID", "500")
    run_step(cfg, STUDY, "prepare", {}, layout)
    run_step(cfg, STUDY, "pretrain", {}, layout)

    job = {"strategy": "mge", "scenario": 1, "run": 0}
    real_select = stop_in_second_round(monkeypatch)
    monkeypatch.setenv("SLURM_JOB_ID", "501")
    with pytest.raises(KeyboardInterrupt):
        run_step(cfg, STUDY, "finetune", job, layout)
    monkeypatch.setattr(finetune, "select", real_select)
    monkeypatch.setenv("SLURM_JOB_ID", "502")
    run_step(cfg, STUDY, "finetune", job, layout)
    folder = Path(layout.run_dir("multilabel", "finetune", "mge/scenario1/run0"))
    t = json.loads((folder / "train.json").read_text())
    assert t["slurm_job_ids"] == ["501", "502"] and t["sizes"] == [6, 10, 14]
    assert t["train_seconds"] > 0 and t["gpu_hours"] >= 0.0
    assert 0 < t["trainable_params"] <= t["total_params"]
    with open(folder / "rounds.csv") as fh:
        assert "gpu_hours" in next(csv.reader(fh))

    summary = run_step(cfg, STUDY, "evaluate", job, layout)
    run = Path(layout.run_dir("multilabel", "evaluate", "mge/scenario1/run0"))
    pred = TASK.predictions(run, cfg, layout)
    assert pred.meta["cost"]["slurm_job_ids"] == ["501", "502"]
    assert pred.meta["model"] == "DenseNet 1-1-1-1 BYOL + sigmoid head"
    truth = TASK.truth(cfg, layout)
    assert truth.meta["benchmark"] == "generated multi-label test set, 21 images, at 14 labels"
    out = TASK.score(pred.arrays, truth)
    last = summary["rounds"][-1]
    assert last["n_labelled"] == 14
    assert out["scores"]["macro_f1"] == pytest.approx(last["macro_f1"])
    assert out["scores"]["micro_f1"] == pytest.approx(last["micro_f1"])
