"""Shared fixtures: repository paths, the real-data folder, a tiny valid config, and helpers
that run the ``rstransfer`` CLI and Snakemake in subprocesses (scratch output only).

Nothing here writes into the repository's ``results/``: every config a test writes points
``results`` at ``tmp_path``, and Snakemake runs get ``--config results=<tmp>`` as well
(``common.smk`` writes ``<results>/config/effective.yaml`` while parsing).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
TESTS = REPO_ROOT / "tests"
TINY_CONFIG = TESTS / "workflow" / "hsi-only.yaml"
#: the interpreter running pytest; its folder holds the ``rstransfer`` and ``snakemake`` scripts
VENV_BIN = Path(sys.executable).parent

# Keep in-process TensorFlow small and quiet (2-core CI); must be set before TF is imported.
for _key, _value in {
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "TF_USE_LEGACY_KERAS": "1",
    "TF_NUM_INTRAOP_THREADS": "2",
    "TF_NUM_INTEROP_THREADS": "1",
    "OMP_NUM_THREADS": "2",
    "MPLBACKEND": "Agg",
}.items():
    os.environ.setdefault(_key, _value)

CliResult = tuple[int, str, str]


def cli_env(**extra: str) -> dict[str, str]:
    """Environment for subprocesses: the venv first on PATH (rules call ``rstransfer``), one
    thread per process, TensorFlow's C++ logging off."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        {
            "RSTRANSFER_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            "TF_NUM_INTRAOP_THREADS": "1",
            "TF_NUM_INTEROP_THREADS": "1",
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "TF_USE_LEGACY_KERAS": "1",
            "MPLBACKEND": "Agg",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    env.update(extra)
    return env


from rstransfer.core.config import deep_update  # noqa: E402  (the merge --configfile uses)


def tiny_settings(results: Path, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The tiny config (tests/workflow/hsi-only.yaml) with ``results`` under scratch."""
    cfg = yaml.safe_load(TINY_CONFIG.read_text())
    cfg["results"] = str(results)
    return deep_update(cfg, overrides or {})


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


#: CI (.ci/run) sets RSTRANSFER_NO_SKIP=1: every skip (real data missing, no SLURM cluster, no
#: Chromium, no horovodrun, ...) is then a failure, and the summary's skip count must be 0
NO_SKIP = os.environ.get("RSTRANSFER_NO_SKIP") == "1"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data folder (../shared/data or $RSTRANSFER_SHARED_DATA); skip when absent
    (a failure under RSTRANSFER_NO_SKIP=1)."""
    env = os.environ.get("RSTRANSFER_SHARED_DATA")
    root = Path(env) if env else REPO_ROOT.parent / "shared" / "data"
    if not root.is_dir():
        pytest.skip(f"real data not available: {root} (set RSTRANSFER_SHARED_DATA to the shared/data folder)")
    return root


def _skip_reason(report: Any) -> str:
    longrepr = report.longrepr
    reason = str(longrepr[2]) if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return reason.removeprefix("Skipped: ")


def _no_skip(report: Any) -> None:
    """Under RSTRANSFER_NO_SKIP=1 a skip (not an xfail) becomes a failure with its reason."""
    if NO_SKIP and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"RSTRANSFER_NO_SKIP=1 (CI must not skip), but: {_skip_reason(report)}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: Any, call: Any) -> Any:
    outcome = yield
    _no_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: Any) -> Any:
    outcome = yield  # a module-level skip or importorskip
    _no_skip(outcome.get_result())


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """``write_config(overrides={}, name="config.yaml")``: the tiny config merged with
    ``overrides``, written to ``tmp_path/name``; ``results`` points at ``tmp_path/results``."""

    def write(overrides: dict[str, Any] | None = None, name: str = "config.yaml", *, raw: bool = False) -> Path:
        data = overrides if raw else tiny_settings(tmp_path / "results", overrides)
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return write


@pytest.fixture
def tiny_config(write_config: Callable[..., Path]) -> Path:
    """A small valid config (synthetic scenes 96/72 px, window 9, 13 components, 1 epoch)."""
    return write_config()


def run_cli_in(cwd: Path, *args: Any, timeout: float = 600) -> CliResult:
    """Run ``python -m rstransfer.cli ARGS`` in ``cwd``; return (rc, stdout, stderr)."""
    proc = subprocess.run(
        [sys.executable, "-m", "rstransfer.cli", *map(str, args)],
        cwd=cwd,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture
def run_cli(tmp_path: Path) -> Callable[..., CliResult]:
    """``run_cli(*args)`` -> (rc, stdout, stderr); runs in ``tmp_path`` (so a missing
    ``--config`` never picks up the repository's config.yaml)."""

    def run(*args: Any, timeout: float = 600) -> CliResult:
        return run_cli_in(tmp_path, *args, timeout=timeout)

    return run


def run_snakemake(*args: Any, results: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Snakemake from the repository root with ``results`` redirected to scratch.

    Output (stdout and stderr together) is in ``.stdout``.
    """
    cmd = [str(VENV_BIN / "snakemake"), *map(str, args), "--config", f"results={results}"]
    return subprocess.run(
        cmd,
        cwd=REPO_ROOT,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def snakemake() -> Callable[..., subprocess.CompletedProcess[str]]:
    return run_snakemake


#: evidence lines ("the demo DAG ran through sbatch ...") printed in the final summary, so the
#: CI log shows them even though pytest captures passing tests' output
CI_EVIDENCE: list[str] = []


def ci_log(line: str) -> None:
    CI_EVIDENCE.append(line)
    print(line)


def _skipped(terminalreporter: Any) -> list[Any]:
    return [r for r in terminalreporter.stats.get("skipped", []) if not hasattr(r, "wasxfail")]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if CI_EVIDENCE:
        terminalreporter.section("CI evidence (SLURM, Horovod, resume)")
        for line in CI_EVIDENCE:
            terminalreporter.write_line(line)
    skipped = _skipped(terminalreporter)
    terminalreporter.section("CI summary")
    rule = " (RSTRANSFER_NO_SKIP=1: must be 0)" if NO_SKIP else ""
    terminalreporter.write_line(f"CI: skipped {len(skipped)}{rule}")
    for r in skipped:
        terminalreporter.write_line(f"  skipped {r.nodeid}: {_skip_reason(r)}")


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if NO_SKIP and reporter is not None and _skipped(reporter) and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
