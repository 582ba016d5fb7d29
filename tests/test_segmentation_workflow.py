"""The segmentation study end to end on the Vaihingen fixtures (68x76 px tiles, 64 px patches,
1 epoch), through the generic CLI and the generic jobs/ scripts, plus the DAG under ``snakemake -n``.

One module-scoped run (results layout ``<results>/segmentation/<step>/<run>/``):
``rstransfer prepare --study segmentation`` -> ``jobs/finetune.sbatch segmentation scratch_aug``
(pretrained none, augmentation, fcn_all: the tutorial's scratch run) -> ``rstransfer finetune
--run heads_transfer`` (pretrained run:scratch_aug, fcn_heads) -> ``jobs/evaluate.sbatch
segmentation scratch_aug/area15`` + ``rstransfer evaluate --run heads_transfer/area15`` ->
``rstransfer report --study segmentation`` -> ``rstransfer index``. ``srun`` is a stand-in that
runs its arguments (no SLURM here). The tests that read this run are marked slow (about a minute
on 2 cores; CI still runs them).
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
SEG_RULES = ("segmentation_prepare", "segmentation_finetune", "segmentation_evaluate", "segmentation_report")


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
    settings = seg_settings(results)
    settings["hsi"] = {"enabled": False}  # the top-level index links every enabled study's report
    cfg.write_text(yaml.safe_dump(settings, sort_keys=False))  # keep the experiments' order
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

    check("prepare", run_cli_in(tmp, "prepare", "--study", "segmentation", "--config", cfg))
    check("finetune.sbatch scratch_aug", _run(["bash", "jobs/finetune.sbatch", "segmentation", "scratch_aug"], REPO_ROOT, **job_env))
    check(
        "finetune heads_transfer",
        run_cli_in(tmp, "finetune", "--study", "segmentation", "--config", cfg, "--run", "heads_transfer", "--threads", 1),
    )
    check(
        "evaluate.sbatch scratch_aug",
        _run(["bash", "jobs/evaluate.sbatch", "segmentation", f"scratch_aug/area{TILE}"], REPO_ROOT, **job_env),
    )
    check(
        "evaluate heads_transfer",
        run_cli_in(
            tmp, "evaluate", "--study", "segmentation", "--config", cfg, "--run", f"heads_transfer/area{TILE}", "--threads", 1
        ),
    )
    check("report", run_cli_in(tmp, "report", "--study", "segmentation", "--config", cfg))
    check("index", run_cli_in(tmp, "index", "--config", cfg))
    return {"results": results, "config": cfg, "tmp": tmp, "steps": steps}


def prepare_dir(run: dict[str, Path]) -> Path:
    return run["results"] / "segmentation" / "prepare"


def train_dir(run: dict[str, Path], experiment: str) -> Path:
    return run["results"] / "segmentation" / "finetune" / experiment


def eval_dir(run: dict[str, Path], experiment: str) -> Path:
    return run["results"] / "segmentation" / "evaluate" / experiment / f"area{TILE}"


@pytest.mark.slow  # the module run: about a minute on 2 CPU cores
def test_train_json_and_history(run: dict[str, Path]) -> None:
    scratch = json.loads((train_dir(run, "scratch_aug") / "train.json").read_text())
    heads = json.loads((train_dir(run, "heads_transfer") / "train.json").read_text())
    assert scratch["experiment"] == "scratch_aug" and scratch["pretrained"] == "none" and scratch["augment"] is True
    # no knobs any more: the experiment's entry in the config is what ran (the sbatch job names it)
    experiments = yaml.safe_load(run["config"].read_text())["segmentation"]["experiments"]
    for t in (scratch, heads):
        assert t["step"] == "finetune" and t["model"] == "resnet50_fcn"
        assert {k: t[k] for k in ("pretrained", "augment", "policy")} == experiments[t["experiment"]]
    assert scratch["pretrained_file"] is None
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
    for experiment in ("scratch_aug", "heads_transfer"):
        assert sorted(p.name for p in train_dir(run, experiment).iterdir()) == ["history.csv", "train.json", "weights.h5"]
    assert not (train_dir(run, "scratch_aug").parent / ".scratch_aug.checkpoint").exists()
    # published by one rename: no checkpoint, staging or old folder is left beside the run folders
    assert sorted(p.name for p in train_dir(run, "scratch_aug").parent.iterdir()) == ["heads_transfer", "scratch_aug"]


@pytest.mark.slow  # the module run: about a minute on 2 CPU cores
def test_prepare_run_folder_holds_the_patch_files(run: dict[str, Path]) -> None:
    """Real tiles: the prepare folder holds the two patch files and no synthetic tile set."""
    assert sorted(p.name for p in prepare_dir(run).iterdir()) == ["vaihingen_train.hdf5", "vaihingen_val.hdf5"]
    with h5py.File(prepare_dir(run) / "vaihingen_train.hdf5", "r") as f:
        assert f["images"].shape == (8, 64, 64, 3) and f.attrs["split"] == "train"
    with h5py.File(prepare_dir(run) / "vaihingen_val.hdf5", "r") as f:
        assert f["images"].shape == (4, 64, 64, 3) and f.attrs["split"] == "val"
    assert sorted(p.name for p in prepare_dir(run).parent.iterdir()) == ["evaluate", "finetune", "prepare", "report"]


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
        assert sorted(p.name for p in eval_dir(run, experiment).iterdir()) == [
            "comparison.png", "confusion.csv", "metrics.json", "per_class.csv", "prediction.npy", "prediction.png",
        ]  # prediction.npy: the label array a team submits to the leaderboard
        m = json.loads((eval_dir(run, experiment) / "metrics.json").read_text())
        assert m["weights"] == str(train_dir(run, experiment) / "weights.h5")
        assert m["train"] == json.loads((train_dir(run, experiment) / "train.json").read_text())
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
    out = run["results"] / "segmentation" / "report"
    assert sorted(p.name for p in out.iterdir()) == [
        "index.html", "per_class.csv", "per_class.md", "tile_oa.csv", "tile_oa.md", "timing.csv", "timing.md",
    ]
    tile_oa = pd.read_csv(out / "tile_oa.csv")
    assert list(tile_oa["experiment"]) == ["scratch_aug", "heads_transfer"]
    assert list(tile_oa.columns) == ["experiment", f"area{TILE} OA (%)", "mean OA (%)", f"area{TILE} Kappa"]
    for _, row in tile_oa.iterrows():
        m = json.loads((eval_dir(run, row["experiment"]) / "metrics.json").read_text())
        assert f"{row[f'area{TILE} OA (%)']:.2f}" == f"{100 * m['OA']:.2f}" == f"{row['mean OA (%)']:.2f}"
        assert f"{row[f'area{TILE} Kappa']:.3f}" == f"{m['Kappa']:.3f}"
    per_class = pd.read_csv(out / "per_class.csv")
    assert len(per_class) == 2 * 6 and set(per_class["tile"]) == {TILE}
    timing = pd.read_csv(out / "timing.csv")
    assert list(timing["policy"]) == ["fcn_all", "fcn_heads"] and list(timing["epochs"]) == [1, 1]
    assert (out / "tile_oa.md").read_text().startswith("| experiment")
    assert f"## area {TILE}" in (out / "per_class.md").read_text()
    text = (out / "index.html").read_text()
    for table_id in ("tile_oa", "timing", f"per_class_area{TILE}", f"confusion_scratch_aug_area{TILE}"):
        assert re.search(rf'<table[^>]*id="{table_id}"', text), table_id
    assert len(re.findall(r'src="data:image/png;base64,', text)) == 2
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", text, re.I)
    assert "<script" not in text.lower() and "<link" not in text.lower()


@pytest.mark.slow  # the module run: about a minute on 2 CPU cores
def test_top_level_index_links_the_segmentation_report(run: dict[str, Path]) -> None:
    index = run["results"] / "report" / "index.html"
    links = re.findall(r'href="([^"]+)"', index.read_text())
    assert "../segmentation/report/index.html" in links
    assert all((index.parent / link).resolve().is_file() for link in links if not link.startswith("#"))
    assert not any("hsi" in link for link in links)  # a disabled study is not linked


@pytest.mark.slow  # the module run: about a minute on 2 CPU cores
def test_transfer_true_without_the_imagenet_file_fails_cleanly(run: dict[str, Path], tmp_path: Path) -> None:
    """The tutorial's TRANSFER=True AUGMENT=True is now the experiment imagenet_aug (the schema's
    default entry); without the local Keras file it fails in one line, before any data is read."""
    settings = yaml.safe_load(run["config"].read_text())
    settings["segmentation"]["experiments"]["imagenet_aug"] = {"pretrained": "imagenet", "augment": True, "policy": "fcn_all"}
    config = tmp_path / "imagenet.yaml"
    config.write_text(yaml.safe_dump(settings, sort_keys=False))
    out = tmp_path / "never"
    proc = subprocess.run(
        [str(VENV_BIN / "rstransfer"), "finetune", "--study", "segmentation", "--config", str(config),
         "--run", "imagenet_aug", "--out", str(out)],
        cwd=tmp_path, env=cli_env(KERAS_HOME=str(tmp_path / "kh")), capture_output=True, text=True, timeout=300,
    )
    # TensorFlow's C++ start-up chatter (absl, cuDNN/cuBLAS factory lines) is not ours
    lines = [line for line in proc.stderr.strip().splitlines() if not TF_NOISE.match(line)]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    expected = tmp_path / "kh" / "models" / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    assert lines[0].startswith("rstransfer: error: pretrained imagenet:") and str(expected) in lines[0]
    assert not out.exists() and not (out.parent / f".{out.name}.checkpoint").exists()
    assert not (out.parent / f".{out.name}.staging").exists()
    assert not (run["results"] / "segmentation" / "finetune" / "imagenet_aug").exists()


# ---------------------------------------------------------------------------------------------
# the DAG


def _job_counts(output: str) -> dict[str, int]:
    table = output.split("Job stats:")[1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M)}


def _jobs(output: str, rule: str) -> list[dict[str, str]]:
    """The ``rule <name>:`` blocks of a dry run's job list, as {field: value} (input, output, ...)."""
    blocks = []
    for m in re.finditer(rf"^rule {rule}:\n((?:    \w+: .*\n)+)", output, re.M):
        blocks.append(dict(re.findall(r"^    (\w+): (.*)$", m[1], re.M)))
    return blocks


def _merged_experiments(overrides: dict[str, Any]) -> list[str]:
    base = yaml.safe_load((REPO_ROOT / "config.yaml").read_text())
    return list(deep_update(base, overrides)["segmentation"]["experiments"])


@pytest.fixture
def dry_run(tmp_path: Path) -> Callable[[dict[str, Any]], tuple[dict[str, int], str]]:
    def run(settings: dict[str, Any]) -> tuple[dict[str, int], str]:
        path = tmp_path / "dry.yaml"
        path.write_text(yaml.safe_dump(settings))
        proc = run_snakemake("-n", "--configfile", path, results=tmp_path / "results", timeout=300)
        assert proc.returncode == 0, proc.stdout[-4000:]
        return _job_counts(proc.stdout), proc.stdout

    return run


def test_dry_run_lists_the_segmentation_rules_when_enabled(
    tmp_path: Path, dry_run: Callable[[dict[str, Any]], tuple[dict[str, int], str]]
) -> None:
    settings = seg_settings(tmp_path / "results", synthetic={"enabled": False})
    counts, output = dry_run(settings)
    n_exp = len(_merged_experiments(settings))  # config.yaml's experiments merge with these
    assert counts["segmentation_prepare"] == 1 and counts["segmentation_report"] == 1
    assert counts["segmentation_finetune"] == n_exp and counts["segmentation_evaluate"] == n_exp * 1
    assert "segmentation_pretrain" not in counts  # the backbone starts from ImageNet or another run
    assert counts["report_index"] == 1
    # real tiles: nothing generated; prepare reads the user's train/val tiles (evaluate its test tile)
    results = tmp_path / "results"
    (prepare,) = _jobs(output, "segmentation_prepare")
    tiles = [FIXTURES / sub / f"top_mosaic_09cm_area{n}.tif" for n in (1, 3, 30) for sub in ("top", "gts")]
    assert prepare["input"].split(", ") == [str(t) for t in tiles]
    assert prepare["output"] == str(results / "segmentation" / "prepare")
    assert prepare["log"] == str(results / "logs" / "segmentation_prepare" / "run.log")
    evaluate = {j["output"]: j for j in _jobs(output, "segmentation_evaluate")}
    job = evaluate[str(results / "segmentation" / "evaluate" / "heads_transfer" / f"area{TILE}")]
    assert job["input"].split(", ") == [
        str(results / "segmentation" / "finetune" / "heads_transfer"),
        str(FIXTURES / "top" / f"top_mosaic_09cm_area{TILE}.tif"),
        str(FIXTURES / "gts" / f"top_mosaic_09cm_area{TILE}.tif"),
    ]
    assert job["log"] == str(results / "logs" / "segmentation_evaluate" / "heads_transfer" / f"area{TILE}.log")
    finetune = {j["output"]: j for j in _jobs(output, "segmentation_finetune")}
    job = finetune[str(results / "segmentation" / "finetune" / "heads_transfer")]
    assert job["input"].split(", ") == [
        str(results / "segmentation" / "prepare"), str(results / "segmentation" / "finetune" / "scratch_aug"),
    ]


def test_dry_run_synthetic_demo_and_disabled(
    tmp_path: Path, dry_run: Callable[[dict[str, Any]], tuple[dict[str, int], str]]
) -> None:
    demo, output = dry_run({"segmentation": {"enabled": True, "synthetic": {"enabled": True}}})
    for rule in SEG_RULES:
        assert demo.get(rule, 0) >= 1, rule
    # the synthetic tile set is made by the prepare job (inside its run folder), which reads no
    # user file; the evaluate jobs read their tiles from there
    results = tmp_path / "results"
    (prepare,) = _jobs(output, "segmentation_prepare")
    assert "input" not in prepare and prepare["output"] == str(results / "segmentation" / "prepare")
    for job in _jobs(output, "segmentation_evaluate"):
        assert str(results / "segmentation" / "prepare") in job["input"].split(", "), job
    off, _ = dry_run({"segmentation": {"enabled": False}})
    assert not set(off) & set(SEG_RULES)
    assert off["report_index"] == 1 and off["hsi_report"] == 1


def test_prepare_writes_the_synthetic_tile_set_into_its_run_folder(
    tmp_path: Path, run_cli: Callable[..., tuple[int, str, str]]
) -> None:
    """The demo's tiles (what the make_vaihingen_demo rule wrote before) come from the prepare
    step: ``<results>/segmentation/prepare/tiles/{top,gts,dsm}`` beside the patch files."""
    results = tmp_path / "results"
    settings = seg_settings(
        results, image_dir="", label_dir="", dsm_dir="", synthetic={"enabled": True, "height": 64, "width": 64, "seed": 0}
    )
    config = tmp_path / "syn.yaml"
    config.write_text(yaml.safe_dump(settings, sort_keys=False))
    rc, stdout, stderr = run_cli("prepare", "--study", "segmentation", "--config", config)
    assert rc == 0, stderr
    assert "segmentation: prepared Vaihingen: " in stdout
    prepared = results / "segmentation" / "prepare"
    assert sorted(p.name for p in prepared.iterdir()) == ["tiles", "vaihingen_train.hdf5", "vaihingen_val.hdf5"]
    tiles = prepared / "tiles"
    assert sorted(p.name for p in tiles.iterdir()) == ["dsm", "gts", "top"]
    for n in (1, 3, 30, TILE):  # every configured tile, the test tile too
        tile = vh.read_tile(vh.TileSource(tiles / "top", tiles / "gts", tiles / "dsm"), n)
        assert tile.dsm is not None and set(np.unique(tile.mask)) <= set(range(6))
    assert sorted(p.name for p in results.joinpath("segmentation").iterdir()) == ["prepare"]


def test_jobs_scripts_keep_the_house_header(repo_root: Path) -> None:
    """The segmentation tutorial's jobs are the generic ones (``STUDY RUN``): prepare, finetune
    (the old train_resnet50_fcn.sbatch), evaluate (the old evaluate_network.sbatch), report."""

    def sbatch_keys(path: Path) -> list[str]:
        return [re.match(r"#SBATCH (--[\w-]+)", line)[1] for line in path.read_text().splitlines() if line.startswith("#SBATCH")]

    reference = set(sbatch_keys(repo_root / "jobs" / "finetune.sbatch"))
    for name in ("prepare.sbatch", "finetune.sbatch", "evaluate.sbatch", "report.sbatch"):
        text = (repo_root / "jobs" / name).read_text()
        assert set(sbatch_keys(repo_root / "jobs" / name)) <= reference
        calls = [line for line in text.splitlines() if not line.startswith("#") and re.search(r"\brstransfer [a-z]", line)]
        # training goes through the launcher (Horovod-ready), the other steps are one srun task
        assert "EDIT HERE" in text and len(calls) == 1, name
        if name == "finetune.sbatch":
            assert re.match(r"(exec )?rstransfer launch ", calls[0]), calls[0]
        else:
            assert calls[0].startswith(f"srun rstransfer {name.removesuffix('.sbatch')} "), calls[0]
        assert "--study" in calls[0]  # STUDY ($1): one script serves every study
    for name in ("finetune.sbatch", "evaluate.sbatch"):  # RUN ($2): the experiment (finetune), experiment/areaN
        text = (repo_root / "jobs" / name).read_text()
        assert "--run" in text and "${2:-${RUN:" in text
    readme = (repo_root / "jobs" / "README.md").read_text()
    assert "jobs/finetune.sbatch segmentation scratch_aug" in readme
    assert f"jobs/evaluate.sbatch segmentation scratch_aug/area{TILE}" in readme
