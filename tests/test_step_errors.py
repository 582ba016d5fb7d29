"""A step whose earlier outputs are incomplete stops with one line naming the missing file, exit 2,
and writes nothing (no run folder, no staging folder): report without a pretrain train.json or
without an evaluated run's metrics.json, evaluate without the fine-tuned run's train.json."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import CliResult


@pytest.fixture
def hsi(write_config: Callable[..., Path], tmp_path: Path) -> dict[str, Path]:
    cfg = write_config({"hsi": {"policies": ["Network_2"], "seeds": [0]}})
    return {"config": cfg, "results": tmp_path / "results"}


def assert_one_line(result: CliResult, *words: str) -> str:
    rc, out, err = result
    assert rc == 2 and out == "", (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rstransfer: error: "), err
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def test_report_without_pretrain_record(hsi: dict[str, Path], run_cli: Callable[..., CliResult]) -> None:
    r = hsi["results"] / "hsi"
    (r / "pretrain" / "seed0").mkdir(parents=True)
    (r / "evaluate" / "Network_2" / "seed0").mkdir(parents=True)
    assert_one_line(run_cli("report", "--study", "hsi", "--config", hsi["config"]),
                    str(r / "pretrain" / "seed0" / "train.json"), "missing", "rstransfer pretrain --study hsi")
    assert not (r / "report").exists() and not list(r.glob(".report*"))


def test_report_without_metrics(hsi: dict[str, Path], run_cli: Callable[..., CliResult]) -> None:
    r = hsi["results"] / "hsi"
    (r / "pretrain" / "seed0").mkdir(parents=True)
    (r / "pretrain" / "seed0" / "train.json").write_text(json.dumps({"dataset": "synthetic_source"}))
    (r / "pretrain" / "seed0" / "source_test.json").write_text(json.dumps({"dataset": "synthetic_source"}))
    (r / "evaluate" / "Network_2" / "seed0").mkdir(parents=True)
    assert_one_line(run_cli("report", "--study", "hsi", "--config", hsi["config"]),
                    str(r / "evaluate" / "Network_2" / "seed0" / "metrics.json"), "rstransfer evaluate --study hsi")
    assert not (r / "report").exists() and not list(r.glob(".report*"))


def test_evaluate_without_train_record(hsi: dict[str, Path], run_cli: Callable[..., CliResult]) -> None:
    r = hsi["results"] / "hsi"
    (r / "prepare" / "synthetic_target").mkdir(parents=True)
    (r / "finetune" / "Network_2" / "seed0").mkdir(parents=True)
    assert_one_line(run_cli("evaluate", "--study", "hsi", "--run", "Network_2/seed0", "--config", hsi["config"]),
                    str(r / "finetune" / "Network_2" / "seed0" / "train.json"), "rstransfer finetune --study hsi")
    assert not (r / "evaluate" / "Network_2" / "seed0").exists()
    assert not [p for p in (r / "evaluate").rglob("*") if p.is_file() or p.name.startswith(".")]


def test_a_programming_error_is_a_traceback_not_a_one_line_error(hsi: dict[str, Path], monkeypatch) -> None:
    """Only user-facing errors (RSTransferError) become one line; a KeyError inside the code is
    a bug and keeps its traceback (the CLI used to print `error: 'seconds_per_epoch'`)."""
    from rstransfer import cli
    from rstransfer.core import study as core_study

    def broken(*args, **kwargs):
        return {}["seconds_per_epoch"]

    monkeypatch.setattr(core_study, "run_step", broken)
    with pytest.raises(KeyError, match="seconds_per_epoch"):
        cli.main(["report", "--study", "hsi", "--config", str(hsi["config"])])
