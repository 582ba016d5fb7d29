"""Config validation: the shipped config, defaults, errors that name the bad key, the same
errors through the CLI and through Snakemake, and the DAG Snakemake builds from a config."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from rstransfer.core.config import load_config, load_schema, validate
from rstransfer.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]

Snakemake = Callable[..., subprocess.CompletedProcess]

MINIMAL = {"datasets": {"synthetic_source": {"reader": "synthetic_source"}, "synthetic_target": {"reader": "synthetic_target"}}}

# bad config override -> words the one-line error must contain
BAD = {
    "typo": ({"hsi": {"prepare": {"pca_componets": 30}}}, ["hsi.prepare", "pca_componets"]),
    "policy": ({"hsi": {"policies": ["Original", "Network_9"]}}, ["hsi.policies", "Network_9"]),
    "dataset": ({"hsi": {"target": "nope"}}, ["hsi.target", "nope"]),
    "even_window": ({"hsi": {"prepare": {"window": 10}}}, ["hsi.prepare.window", "odd"]),
    "few_components": ({"hsi": {"prepare": {"pca_components": 12}}}, ["hsi.prepare.pca_components", "13"]),
    "bad_optimizer": ({"hsi": {"train": {"finetune": {"optimizer": "lbfgs"}}}}, ["hsi.train.finetune.optimizer", "lbfgs"]),
    "wrong_type": ({"hsi": {"train": {"pretrain": {"epochs": "ten"}}}}, ["hsi.train.pretrain.epochs", "ten"]),
    "gres": ({"distribution": {"mode": "horovod"}, "slurm": {"gpu": {"gres": "gpu:1", "gpus_per_node": 4}}},
             ["slurm.gpu.gres", "gpus_per_node", "4"]),
}


def test_shipped_config_validates(repo_root: Path) -> None:
    cfg = load_config([repo_root / "config.yaml"])
    assert cfg["hsi"]["source"] in cfg["datasets"] and cfg["hsi"]["target"] in cfg["datasets"]
    assert cfg["hsi"]["policies"] == ["Original"] + [f"Network_{i}" for i in range(1, 8)]
    assert cfg["hsi"]["prepare"]["window"] % 2 == 1
    assert cfg["hsi"]["prepare"]["split"]["protocol"] == "disjoint"


def test_tiny_test_config_validates(tiny_config: Path) -> None:
    cfg = load_config([tiny_config])
    assert cfg["results"] == str(tiny_config.parent / "results")
    assert (cfg["hsi"]["prepare"]["window"], cfg["hsi"]["prepare"]["pca_components"]) == (9, 13)
    assert cfg["hsi"]["train"]["finetune"]["epochs"] == 1 and cfg["hsi"]["seeds"] == [0]


def test_defaults_are_filled_in() -> None:
    cfg = validate(MINIMAL)
    assert cfg["team"] == "default" and cfg["results"] == "results"
    assert cfg["hsi"]["model"] == "hybridsn"
    assert cfg["hsi"]["seeds"] == [0, 1, 2]
    assert cfg["hsi"]["policies"] == ["Original"] + [f"Network_{i}" for i in range(1, 8)]
    assert cfg["hsi"]["prepare"]["pca_components"] == 30 and cfg["hsi"]["prepare"]["window"] == 25
    assert cfg["hsi"]["prepare"]["split"] == {
        "protocol": "disjoint",
        "train": 0.3,
        "val": 0.1,
        "test": 0.6,
        "block_size": 16,
        "seed": 0,
        "min_pixels_per_class": 5,
        "buffer": "window",
    }
    for step in ("pretrain", "finetune"):  # nested defaults of an omitted section ($ref'd fit)
        fit = cfg["hsi"]["train"][step]
        assert fit["epochs"] == 100 and fit["optimizer"] == "adam"
        assert fit["learning_rate"] == 0.001 and fit["monitor"] == "val_loss" and fit["patience"] == 10
        assert isinstance(fit["batch_size"], int) and fit["batch_size"] > 0
    assert cfg["hsi"]["evaluate"]["batch_size"] == 512
    assert cfg["datasets"]["synthetic_source"]["reader"] == "synthetic_source"  # entry defaults: tests/test_scene_formats.py


def test_partial_section_keeps_given_values_and_fills_the_rest() -> None:
    cfg = validate({**MINIMAL, "hsi": {"train": {"finetune": {"epochs": 3}}}})
    assert cfg["hsi"]["train"]["finetune"]["epochs"] == 3
    assert cfg["hsi"]["train"]["finetune"]["optimizer"] == "adam"
    assert cfg["hsi"]["train"]["pretrain"]["epochs"] == 100


def test_validate_does_not_modify_its_input() -> None:
    raw = {"datasets": dict(MINIMAL["datasets"])}
    validate(raw)
    assert raw == {"datasets": MINIMAL["datasets"]}


def test_every_schema_leaf_has_a_description_and_a_default() -> None:
    schema = load_schema()
    missing = []

    def walk(node: dict[str, Any], where: str) -> None:
        if "$ref" in node:
            node = schema["$defs"][node["$ref"].split("/")[-1]]
        props = node.get("properties")
        if props:
            for key, sub in props.items():
                walk(sub, f"{where}.{key}" if where else key)
        elif node.get("type") not in (None, "object") or "enum" in node:
            if "description" not in node:
                missing.append(f"{where}: description")
            if "default" not in node and where.split(".")[-1] not in {"reader", "class_names", "url", "sha256"}:
                missing.append(f"{where}: default")

    walk(schema, "")
    assert missing == []


def test_empty_config_names_the_missing_dataset() -> None:
    with pytest.raises(ConfigError, match=r"hsi\.source: unknown dataset 'synthetic_source'"):
        validate({})


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config_raises_naming_the_key(case: str, write_config: Callable[..., Path]) -> None:
    override, words = BAD[case]
    path = write_config(override, name="bad.yaml")
    with pytest.raises(ConfigError) as info:
        load_config([path])
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    for word in words:
        assert word in message


def test_typo_message_lists_the_allowed_keys(write_config: Callable[..., Path]) -> None:
    path = write_config({"hsi": {"prepare": {"pca_componets": 30}}})
    with pytest.raises(ConfigError, match=r"hsi.prepare: unknown key 'pca_componets' \(allowed: pca_components, split, window\)"):
        load_config([path])


def test_later_files_override_earlier_ones(write_config: Callable[..., Path], tmp_path: Path) -> None:
    base = write_config()
    extra = tmp_path / "extra.yaml"
    extra.write_text(yaml.safe_dump({"hsi": {"prepare": {"window": 11}, "seeds": [4, 5]}}))
    cfg = load_config([base, extra])
    assert cfg["hsi"]["prepare"]["window"] == 11 and cfg["hsi"]["prepare"]["pca_components"] == 13
    assert cfg["hsi"]["seeds"] == [4, 5]


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config([tmp_path / "absent.yaml"])
    broken = tmp_path / "broken.yaml"
    broken.write_text("prepare: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config([broken])
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config([listing])


# ------------------------------------------------------------------------------------------
# the CLI
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["typo", "policy", "dataset"])
def test_cli_exits_2_with_one_line(case: str, write_config: Callable[..., Path], run_cli: Callable[..., Any]) -> None:
    override, words = BAD[case]
    path = write_config(override, name="bad.yaml")
    rc, out, err = run_cli("config", "--config", path)
    assert rc == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("rstransfer: error: ")
    for word in words:
        assert word in lines[0]


def test_cli_config_prints_the_merged_config(tiny_config: Path, run_cli: Callable[..., Any]) -> None:
    rc, out, err = run_cli("config", "--config", tiny_config)
    assert rc == 0, err
    printed = yaml.safe_load(out)
    assert printed == load_config([tiny_config])
    assert printed["hsi"]["train"]["finetune"]["optimizer"] == "adam"  # defaults included


# ------------------------------------------------------------------------------------------
# Snakemake: validation before any job, lint, and the DAG
# ------------------------------------------------------------------------------------------


def _job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run -> {rule: count}."""
    counts: dict[str, int] = {}
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(r"^job\s+count\s*$", line))
    for line in lines[start + 2 :]:
        m = re.match(r"^(\w+)\s+(\d+)\s*$", line)
        if not m:
            break
        counts[m.group(1)] = int(m.group(2))
    return counts


@pytest.mark.parametrize("case", ["typo", "policy", "dataset"])
def test_snakemake_rejects_a_bad_config_before_any_job(
    case: str, write_config: Callable[..., Path], snakemake: Snakemake, tmp_path: Path
) -> None:
    override, _ = BAD[case]
    # snakemake's own validator reports schema paths as instance['hsi']['policies'][1]
    words = {"typo": ["hsi.prepare", "pca_componets"], "policy": ["policies", "Network_9"], "dataset": ["hsi.target", "nope"]}
    bad = write_config(override, name="bad.yaml")
    results = tmp_path / "results"
    proc = snakemake("-n", "--nolock", "--configfile", bad, results=results)
    assert proc.returncode != 0, proc.stdout
    for word in words[case]:
        assert word in proc.stdout, proc.stdout
    assert "Job stats" not in proc.stdout and "rule hsi_prepare" not in proc.stdout
    assert not results.exists()  # failed while parsing, before writing the effective config


# The one lint accepted: no conda env / container per rule. The supported environment is the
# .venv that `make setup` builds (pinned pip requirements + Horovod built from source), which
# no conda env here reproduces, so the workflow makes no `--sdm conda` claim (README).
NO_SOFTWARE_LINT = "Specify a conda environment or container for each rule."


def test_snakemake_lint_is_clean_but_for_the_software_environment(snakemake: Snakemake, tmp_path: Path) -> None:
    proc = snakemake("--lint", results=tmp_path / "results")
    lints = [line.strip() for line in proc.stdout.splitlines() if line.strip().startswith("* ")]
    assert lints, proc.stdout  # the rules were linted
    assert set(lints) == {f"* {NO_SOFTWARE_LINT}:"}, proc.stdout
    assert "conda:" not in "".join(p.read_text() for p in (ROOT / "workflow").rglob("*.smk"))


def test_dry_run_of_the_shipped_config_lists_the_dag(snakemake: Snakemake, tmp_path: Path) -> None:
    results = tmp_path / "results"
    proc = snakemake("-n", "--nolock", results=results)
    assert proc.returncode == 0, proc.stdout
    counts = _job_counts(proc.stdout)
    expected = {
        "all": 1,
        "hsi_prepare": 2,
        "hsi_pretrain": 1,
        "hsi_finetune": 8,
        "hsi_evaluate": 8,
        "hsi_report": 1,
        # the segmentation study of the demo (synthetic ISPRS tiles, 2 experiments x 2 test tiles)
        "segmentation_prepare": 1,
        "segmentation_finetune": 2,
        "segmentation_evaluate": 4,
        "segmentation_report": 1,
        "report_index": 1,
        # the competition: one submission per task (hsi, vaihingen, multilabel); the organiser's
        # hidden labels, then the boards
        "submit": 3,
        "ground_truth": 1,
        "leaderboard": 1,
    }
    assert {k: counts.get(k) for k in expected} == expected
    # every job is one of the registry's (study, step) rules or a known top-level rule
    from rstransfer.core.config import load_config as load
    from rstransfer.studies import enabled_studies

    cfg = load([Path(__file__).parents[1] / "config.yaml"])
    rules = {f"{s.name}_{step}" for s in enabled_studies(cfg) for step in s.steps if s.runs(cfg, step)}
    assert set(counts) - {"total"} <= rules | {"all", "report_index", "submit", "ground_truth", "leaderboard"}
    assert rules <= set(counts)
    assert counts["total"] == sum(v for k, v in counts.items() if k != "total")
    for policy in ["Original"] + [f"Network_{i}" for i in range(1, 8)]:
        assert f"--run {policy}/seed0 " in proc.stdout or f"/{policy}/seed0" in proc.stdout
    assert str(results / "report" / "index.html") in proc.stdout
    # the rules read the merged config from the scratch results, never from the repo's results/
    effective = results / "config" / "effective.yaml"
    assert load_config([effective])["results"] == str(results)
    assert sorted(p.name for p in results.iterdir()) == ["config"]  # a dry run writes nothing else


def test_dry_run_follows_policies_and_seeds(write_config: Callable[..., Path], snakemake: Snakemake, tmp_path: Path) -> None:
    cfg = write_config({"hsi": {"policies": ["Original", "Network_2"], "seeds": [0, 1]}})
    proc = snakemake("-n", "--nolock", "--configfile", cfg, results=tmp_path / "results")
    assert proc.returncode == 0, proc.stdout
    counts = _job_counts(proc.stdout)
    assert {k: counts[f"hsi_{k}"] for k in ("prepare", "pretrain", "finetune", "evaluate", "report")} == {
        "prepare": 2,
        "pretrain": 1,
        "finetune": 4,
        "evaluate": 4,
        "report": 1,
    }
    for policy, seed in [("Original", 0), ("Original", 1), ("Network_2", 0), ("Network_2", 1)]:
        assert f"hsi/evaluate/{policy}/seed{seed}" in proc.stdout
    assert "Network_1/" not in proc.stdout
