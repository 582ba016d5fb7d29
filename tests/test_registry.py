"""The study registry: a study added in a test only (tests/plugins/dummy_study.py) gets its
rules, CLI steps, results layout and report link without any change to workflow/rules or
cli.py; a step's run folder appears as one unit or not at all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import REPO_ROOT, TESTS, VENV_BIN, cli_env, tiny_settings

PLUGIN_ENV = {"RSTRANSFER_STUDY_MODULES": "dummy_study", "PYTHONPATH": str(TESTS / "plugins")}


def _config(tmp_path: Path, **dummy: object) -> Path:
    cfg = tiny_settings(tmp_path / "results", {"hsi": {"enabled": False}, "dummy": {"enabled": True, **dummy}})
    path = tmp_path / "dummy.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _run(args: list[str], cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    env = cli_env(**PLUGIN_ENV)
    return subprocess.run(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)


def test_no_rule_or_cli_file_names_a_study() -> None:
    """The workflow and the CLI ask the registry; none of them names a study."""
    for path in [*sorted((REPO_ROOT / "workflow" / "rules").glob("*.smk")), REPO_ROOT / "src/rstransfer/cli.py"]:
        text = path.read_text()
        for name in ("dummy", "segmentation", "hybridsn", "vaihingen", "multilabel", "unet", "features"):
            assert name not in text.lower(), f"{path.name} names {name!r}"


def test_dummy_study_dry_run_builds_its_dag(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    proc = _run([str(VENV_BIN / "snakemake"), "-n", "--nolock", "--configfile", str(cfg),
                 "--config", f"results={tmp_path / 'results'}"])
    assert proc.returncode == 0, proc.stdout
    for rule, count in {"dummy_prepare": 1, "dummy_pretrain": 1, "dummy_finetune": 2, "dummy_evaluate": 2,
                        "dummy_report": 1, "report_index": 1}.items():
        assert f"\n{rule}" in proc.stdout and any(
            line.split() == [rule, str(count)] for line in proc.stdout.splitlines()
        ), f"{rule} x{count}\n{proc.stdout}"
    assert "hsi_" not in proc.stdout
    assert "--study dummy --run a/seed0" in proc.stdout or "dummy/finetune/a/seed0" in proc.stdout


def test_dummy_study_runs_end_to_end(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    results = tmp_path / "results"
    proc = _run([str(VENV_BIN / "snakemake"), "--cores", "1", "--configfile", str(cfg), "--config", f"results={results}"])
    assert proc.returncode == 0, proc.stdout
    record = json.loads((results / "dummy" / "evaluate" / "b" / "seed0" / "out.json").read_text())
    assert record == {"step": "evaluate", "run": {"policy": "b", "seed": "0"}, "inputs": ["run"]}
    index = (results / "report" / "index.html").read_text()
    assert 'href="../dummy/report/index.html"' in index and "Dummy study" in index
    assert (results / "logs" / "dummy_finetune" / "a" / "seed0.log").read_text().strip() == "dummy: finetune {'policy': 'a', 'seed': '0'}"


def test_cli_runs_a_dummy_step_and_lists_its_runs(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    proc = _run([sys.executable, "-m", "rstransfer.cli", "runs", "--study", "dummy", "--config", str(cfg)], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout
    assert f"finetune\ta/seed0\t{tmp_path / 'results'}/dummy/finetune/a/seed0" in proc.stdout
    proc = _run([sys.executable, "-m", "rstransfer.cli", "finetune", "--study", "dummy", "--config", str(cfg)], cwd=tmp_path)
    assert proc.returncode == 2 and "give --run (one of: a/seed0, b/seed0)" in proc.stdout
    proc = _run([sys.executable, "-m", "rstransfer.cli", "finetune", "--study", "dummy", "--run", "a/x/seed0",
                 "--config", str(cfg)], cwd=tmp_path)
    assert proc.returncode == 2 and "does not match {policy}/seed{seed}" in proc.stdout


def test_a_failed_step_leaves_no_run_folder(tmp_path: Path) -> None:
    """The step wrote one file, then failed: neither the run folder nor its staging remains,
    and an earlier complete run folder of that run is not touched by the failure."""
    cfg = _config(tmp_path, fail_in="b")
    results = tmp_path / "results"
    for step, run in (("prepare", None), ("pretrain", None), ("finetune", "a/seed0")):
        args = [sys.executable, "-m", "rstransfer.cli", step, "--study", "dummy", "--config", str(cfg)]
        proc = _run(args + (["--run", run] if run else []), cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout
    proc = _run([sys.executable, "-m", "rstransfer.cli", "finetune", "--study", "dummy", "--run", "b/seed0",
                 "--config", str(cfg)], cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout.strip().splitlines()[-1] == "rstransfer: error: dummy: injected failure in b"
    finetune = results / "dummy" / "finetune"
    assert sorted(p.name for p in (finetune / "a").iterdir()) == ["seed0"]
    assert list((finetune / "b").iterdir()) == []  # no run folder, no staging left
    assert sorted(p.name for p in (finetune / "a" / "seed0").iterdir()) == ["first.txt", "out.json"]


def test_missing_input_is_one_line_naming_the_folder(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    proc = _run([sys.executable, "-m", "rstransfer.cli", "evaluate", "--study", "dummy", "--run", "a/seed0",
                 "--config", str(cfg)], cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stdout.strip().splitlines()
    assert lines == [f"rstransfer: error: {tmp_path / 'results'}/dummy/finetune/a/seed0: missing input 'run' of "
                     "dummy evaluate (run the step that makes it first, or fix the data path in the config)"]
    assert not (tmp_path / "results" / "dummy" / "evaluate").exists()


def test_registry_lists_every_study_package() -> None:
    from rstransfer.studies import load_all

    packages = sorted(p.parent.name for p in (REPO_ROOT / "src/rstransfer/studies").glob("*/__init__.py"))
    assert sorted(load_all()) == sorted(packages) or set(packages) <= set(load_all())
    assert os.environ.get("RSTRANSFER_STUDY_MODULES", "") == ""  # the dummy stays in its subprocesses
