"""The segmentation branch end to end on the Vaihingen fixtures (68x76 px tiles, 64 px patches,
1 epoch), through the CLI and the two jobs/ scripts, plus the DAG under ``snakemake -n``.

One module-scoped run: prepare-vaihingen -> jobs/train_resnet50_fcn.sbatch (scratch_aug, the
tutorial knobs AUGMENT=True TRANSFER=False) -> train-fcn heads_transfer (pretrained
run:scratch_aug, fcn_heads) -> jobs/evaluate_network.sbatch + evaluate-fcn on test tile 15 ->
report-segmentation. ``srun`` is a stand-in that runs its arguments (no SLURM here). The tests
that read this run are marked slow (about a minute on 2 cores; CI still runs them).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO_ROOT, VENV_BIN, cli_env, deep_update, run_cli_in, run_snakemake
from rstransfer.studies.segmentation import data as vh

FIXTURES = REPO_ROOT / "tests" / "data" / "vaihingen"
TILE = 15
H, W = 68, 76
ISPRS_COLOURS = {(255, 255, 255), (0, 0, 255), (0, 255, 255), (0, 255, 0), (255, 255, 0), (255, 0, 0)}
TF_NOISE = re.compile(r"^(WARNING: All log messages before absl|[EWI]0000 )")
SEG_RULES = ("prepare_vaihingen", "train_fcn", "evaluate_fcn", "report_segmentation")


def seg_settings(results: Path, **seg: Any) -> dict[str, Any]:
    segmentation = {
        "enabled": True,
        "image_dir": str(FIXTURES / "top"),
        "label_dir": str(FIXTURES / "gts"),
        "dsm_dir": str(FIXTURES / "dsm"),
        "tiles": {"train": [1, 3], "val": [30], "test": [TILE]},
        "patch_size": 64,
        "overlap": 0.5,
        "train": {"epochs": 1, "batch_size": 4, "patience": 1, "learning_rate": 0.001},
        "experiments": {
            "scratch_aug": {"pretrained": "none", "augment": True, "policy": "fcn_all"},
            "heads_transfer": {"pretrained": "run:scratch_aug", "augment": False, "policy": "fcn_heads"},
        },
        "evaluate": {"overlap": 0.5, "batch_size": 4},
    }
    return {
        "results": str(results),
        "datasets": {"synthetic_source": {"reader": "synthetic_source"}, "synthetic_target": {"reader": "synthetic_target"}},
        "segmentation": deep_update(segmentation, seg),
    }


def _run(cmd: list[str], cwd: Path, **env: str) -> tuple[int, str, str]:
    proc = subprocess.run(cmd, cwd=cwd, env=cli_env(**env), capture_output=True, text=True, timeout=900)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("segwf")
    results = tmp / "results"
    cfg = tmp / "seg.yaml"
    cfg.write_text(yaml.safe_dump(seg_settings(results), sort_keys=False))  # keep the experiments' order
    fake = tmp / "bin"
    fake.mkdir()
    (fake / "srun").write_text('#!/bin/sh\nexec "$@"\n')
    (fake / "srun").chmod(0o755)
    job_env = {
        "PATH": f"{fake}:{VENV_BIN}:/usr/bin:/bin",
        "CONFIG": str(cfg),
        "RSTRANSFER_VENV": str(VENV_BIN.parent),
        "SLURM_SUBMIT_DIR": str(REPO_ROOT),
        "SLURM_CPUS_PER_TASK": "1",
    }
    steps: list[tuple[str, tuple[int, str, str]]] = []

    def check(name: str, result: tuple[int, str, str]) -> None:
        steps.append((name, result))
        if result[0] != 0:
            pytest.fail(f"{name} failed ({result[0]}):\n{result[1][-3000:]}\n{result[2][-3000:]}")

    check("prepare-vaihingen", run_cli_in(tmp, "prepare-vaihingen", "--config", cfg))
    check(
        "train_resnet50_fcn.sbatch",
        _run(["bash", "jobs/train_resnet50_fcn.sbatch"], REPO_ROOT, AUGMENT="True", TRANSFER="False", **job_env),
    )
    check(
        "train-fcn heads_transfer",
        run_cli_in(tmp, "train-fcn", "--config", cfg, "--experiment", "heads_transfer", "--threads", 1),
    )
    weights = results / "segmentation" / "train" / "scratch_aug" / "weights.h5"
    check("evaluate_network.sbatch", _run(["bash", "jobs/evaluate_network.sbatch", str(TILE), str(weights)], REPO_ROOT, **job_env))
    check(
        "evaluate-fcn heads_transfer",
        run_cli_in(tmp, "evaluate-fcn", "--config", cfg, "--experiment", "heads_transfer", "--tile", TILE, "--threads", 1),
    )
    check("report-segmentation", run_cli_in(tmp, "report-segmentation", "--config", cfg))
    return {"results": results, "config": cfg, "tmp": tmp}


def train_dir(run: dict[str, Path], experiment: str) -> Path:
    return run["results"] / "segmentation" / "train" / experiment


def eval_dir(run: dict[str, Path], experiment: str) -> Path:
    return run["results"] / "segmentation" / "evaluate" / experiment / f"area{TILE}"


@pytest.mark.slow  # the module run: about a minute on 2 CPU cores
def test_train_json_and_history(run: dict[str, Path]) -> None:
    scratch = json.loads((train_dir(run, "scratch_aug") / "train.json").read_text())
    heads = json.loads((train_dir(run, "heads_transfer") / "train.json").read_text())
    assert scratch["experiment"] == "scratch_aug" and scratch["pretrained"] == "none" and scratch["augment"] is True
    assert scratch["overrides"] == {"pretrained": "none", "augment": True}  # the sbatch knobs
    assert heads["pretrained"] == "run:scratch_aug" and heads["policy"] == "fcn_heads" and heads["augment"] is False
    assert heads["pretrained_file"] == str(train_dir(run, "scratch_aug") / "weights.h5")
    for t in (scratch, heads):
        assert t["epochs_run"] == 1 and t["best_epoch"] == 1
        assert t["total_params"] == 23_609_234 and t["input_shape"] == [64, 64, 3]
        assert t["n_train"] == 8 and t["n_val"] == 4 and t["run"]["slurm_job_id"] == "local"
        assert t["samples_per_second"] > 0 and t["class_names"] == list(vh.CLASSES)
    assert scratch["trainable_params"] == 23_556_114 and heads["trainable_params"] == 21_522
    history = pd.read_csv(train_dir(run, "scratch_aug") / "history.csv")
    assert list(history.columns) == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds"]
    assert len(history) == 1 and 0 <= history["val_accuracy"].iloc[0] <= 1
    assert not (train_dir(run, "scratch_aug").parent / ".scratch_aug.checkpoint").exists()


def _h5_weights(path: Path) -> dict[str, list[np.ndarray]]:
    out = {}
    with h5py.File(path, "r") as f:
        for layer in f.attrs["layer_names"]:
            name = layer.decode() if isinstance(layer, bytes) else layer
            g = f[name]
            out[name] = [g[w.decode() if isinstance(w, bytes) else w][...] for w in g.attrs["weight_names"]]
    return out


@pytest.mark.slow  # the module run: about a minute on 2 CPU cores
def test_transfer_copies_the_backbone_and_fcn_heads_keeps_it_frozen(run: dict[str, Path]) -> None:
    """heads_transfer started from scratch_aug's backbone and trained only fcn_*: every
    backbone array (BatchNorm moving statistics included) is bit-identical afterwards."""
    src = _h5_weights(train_dir(run, "scratch_aug") / "weights.h5")
    dst = _h5_weights(train_dir(run, "heads_transfer") / "weights.h5")
    assert src.keys() == dst.keys()
    backbone = [n for n in src if src[n] and not n.startswith("fcn_")]
    assert len(backbone) > 100
    for n in backbone:
        for a, b in zip(src[n], dst[n], strict=True):
            np.testing.assert_array_equal(a, b, err_msg=n)
    assert not all(np.array_equal(a, b) for a, b in zip(src["fcn_score5"], dst["fcn_score5"], strict=True))


@pytest.mark.slow  # the module run: about a minute on 2 CPU cores
def test_metrics_per_tile(run: dict[str, Path]) -> None:
    mask = vh.read_tile(vh.TileSource(FIXTURES / "top", FIXTURES / "gts", None), TILE).mask
    for experiment in ("scratch_aug", "heads_transfer"):
        m = json.loads((eval_dir(run, experiment) / "metrics.json").read_text())
        assert m["experiment"] == experiment and m["tile"] == TILE and m["tile_split"] == "test"
        cm = np.array(m["confusion_matrix"])
        assert cm.shape == (6, 6) and cm.sum() == H * W
        assert m["support"] == np.bincount(mask.ravel(), minlength=6).tolist()
        assert 0.0 <= m["OA"] <= 1.0 and m["OA"] == pytest.approx(np.trace(cm) / cm.sum())
        assert m["windows"] == 4 and m["pixels_per_second"] > 0
        per_class = pd.read_csv(eval_dir(run, experiment) / "per_class.csv")
        assert list(per_class["class"]) == list(vh.CLASSES) and per_class["pixels"].sum() == H * W
        assert per_class["predicted_pixels"].sum() == H * W
        confusion = pd.read_csv(eval_dir(run, experiment) / "confusion.csv", index_col=0)
        np.testing.assert_array_equal(confusion.to_numpy(), cm)


@pytest.mark.slow  # the module run: about a minute on 2 CPU cores
def test_prediction_png_is_the_tile_in_isprs_colours(run: dict[str, Path]) -> None:
    import matplotlib.image

    png = matplotlib.image.imread(eval_dir(run, "scratch_aug") / "prediction.png")
    assert png.shape[:2] == (H, W)
    rgb = np.round(png[..., :3] * 255).astype(int).reshape(-1, 3)
    assert {tuple(c) for c in np.unique(rgb, axis=0)} <= ISPRS_COLOURS
    m = json.loads((eval_dir(run, "scratch_aug") / "metrics.json").read_text())
    counts = {c: int((rgb == c).all(axis=1).sum()) for c in ISPRS_COLOURS}
    colours = [(255, 255, 255), (0, 0, 255), (0, 255, 255), (0, 255, 0), (255, 255, 0), (255, 0, 0)]
    assert [counts[c] for c in colours] == m["predicted_pixels"]


@pytest.mark.slow  # the module run: about a minute on 2 CPU cores
def test_report_tables_and_self_contained_html(run: dict[str, Path]) -> None:
    out = run["results"] / "report" / "segmentation"
    tile_oa = pd.read_csv(out / "tile_oa.csv")
    assert list(tile_oa["experiment"]) == ["scratch_aug", "heads_transfer"]
    assert list(tile_oa.columns) == ["experiment", f"area{TILE} OA (%)", "mean OA (%)"]
    per_class = pd.read_csv(out / "per_class.csv")
    assert len(per_class) == 2 * 6 and set(per_class["tile"]) == {TILE}
    timing = pd.read_csv(out / "timing.csv")
    assert list(timing["policy"]) == ["fcn_all", "fcn_heads"] and list(timing["epochs"]) == [1, 1]
    assert (out / "tile_oa.md").read_text().startswith("| experiment")
    assert f"## area {TILE}" in (out / "per_class.md").read_text()
    text = (out / "segmentation.html").read_text()
    for table_id in ("tile_oa", "timing", f"per_class_area{TILE}", f"confusion_scratch_aug_area{TILE}"):
        assert re.search(rf'<table[^>]*id="{table_id}"', text), table_id
    assert len(re.findall(r'src="data:image/png;base64,', text)) == 2
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", text, re.I)
    assert "<script" not in text.lower() and "<link" not in text.lower()


@pytest.mark.slow  # the module run: about a minute on 2 CPU cores
def test_transfer_true_without_the_imagenet_file_fails_cleanly(run: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "never"
    proc = subprocess.run(
        [str(VENV_BIN / "rstransfer"), "train-fcn", "--config", str(run["config"]), "--transfer", "true",
         "--augment", "true", "--out", str(out)],
        cwd=tmp_path, env=cli_env(KERAS_HOME=str(tmp_path / "kh")), capture_output=True, text=True, timeout=300,
    )
    # TensorFlow's C++ start-up chatter (absl, cuDNN/cuBLAS factory lines) is not ours
    lines = [line for line in proc.stderr.strip().splitlines() if not TF_NOISE.match(line)]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    expected = tmp_path / "kh" / "models" / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    assert lines[0].startswith("rstransfer: error: pretrained imagenet:") and str(expected) in lines[0]
    assert not out.exists() and not (out.parent / f".{out.name}.checkpoint").exists()


# ---------------------------------------------------------------------------------------------
# the DAG


def _job_counts(output: str) -> dict[str, int]:
    table = output.split("Job stats:")[1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M)}


def _merged_experiments(overrides: dict[str, Any]) -> list[str]:
    base = yaml.safe_load((REPO_ROOT / "config.yaml").read_text())
    return list(deep_update(base, overrides)["segmentation"]["experiments"])


@pytest.fixture
def dry_run(tmp_path: Path) -> Callable[[dict[str, Any]], dict[str, int]]:
    def run(settings: dict[str, Any]) -> dict[str, int]:
        path = tmp_path / "dry.yaml"
        path.write_text(yaml.safe_dump(settings))
        proc = run_snakemake("-n", "--configfile", path, results=tmp_path / "results", timeout=300)
        assert proc.returncode == 0, proc.stdout[-4000:]
        return _job_counts(proc.stdout)

    return run


def test_dry_run_lists_the_segmentation_rules_when_enabled(
    tmp_path: Path, dry_run: Callable[[dict[str, Any]], dict[str, int]]
) -> None:
    settings = seg_settings(tmp_path / "results", synthetic={"enabled": False})
    counts = dry_run(settings)
    n_exp = len(_merged_experiments(settings))  # config.yaml's experiments merge with these
    assert counts["prepare_vaihingen"] == 1 and counts["report_segmentation"] == 1
    assert counts["train_fcn"] == n_exp and counts["evaluate_fcn"] == n_exp * 1
    assert "make_vaihingen_demo" not in counts  # real tiles: nothing generated


def test_dry_run_synthetic_demo_and_disabled(tmp_path: Path, dry_run: Callable[[dict[str, Any]], dict[str, int]]) -> None:
    demo = dry_run({"segmentation": {"enabled": True, "synthetic": {"enabled": True}}})
    for rule in ("make_vaihingen_demo", *SEG_RULES):
        assert demo.get(rule, 0) >= 1, rule
    off = dry_run({"segmentation": {"enabled": False}})
    assert not set(off) & {"make_vaihingen_demo", *SEG_RULES}
    assert off["report"] == 1


def test_jobs_scripts_keep_the_house_header(repo_root: Path) -> None:
    def sbatch_keys(path: Path) -> list[str]:
        return [re.match(r"#SBATCH (--[\w-]+)", line)[1] for line in path.read_text().splitlines() if line.startswith("#SBATCH")]

    reference = set(sbatch_keys(repo_root / "jobs" / "finetune.sbatch"))
    for name in ("train_resnet50_fcn.sbatch", "evaluate_network.sbatch"):
        text = (repo_root / "jobs" / name).read_text()
        assert set(sbatch_keys(repo_root / "jobs" / name)) <= reference
        calls = [line for line in text.splitlines() if not line.startswith("#") and re.search(r"\brstransfer [a-z]", line)]
        # training goes through the launcher (Horovod-ready), inference is one srun task
        assert "EDIT HERE" in text and len(calls) == 1
        assert calls[0].startswith("rstransfer launch " if name.startswith("train") else "srun rstransfer ")
    train = (repo_root / "jobs" / "train_resnet50_fcn.sbatch").read_text()
    for knob in ("DATA=", "OUT=", "AUGMENT=", "TRANSFER="):
        assert knob in train
