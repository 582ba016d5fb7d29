"""The one shape every study has: prepare -> pretrain -> finetune x policies -> evaluate -> report.

A study is a package under ``rstransfer.studies`` that registers one :class:`Study`. The
Snakemake stage files, the CLI (``rstransfer <step> --study <name> --run <run>``), the
``jobs/`` scripts and the tests all go through :func:`run_step`, so a local run, a SLURM job
and a Horovod rank share one code path.

Contract of a step:

* ``runs(cfg)`` lists the wildcard combinations of the step (``[]``: the study has no such
  step; ``[{}]``: one run). Each run has a folder ``<results>/<study>/<step>/<pattern>``,
  e.g. ``results/hsi/finetune/Network_2/seed0``.
* ``inputs(cfg, run, layout)`` names what the run reads: run folders of earlier steps
  (``layout.run_dir(study, step, run)``) or the user's data files. The workflow makes them
  inputs of the rule; :func:`run_step` checks they exist and digests them for checkpoints.
* ``func(ctx)`` does the work and writes every output into ``ctx.out`` (a staging folder).
  Only rank 0 writes. When ``func`` returns, rank 0 publishes the staging folder onto the run
  folder with one rename, so a killed step never leaves a partial run folder that looks done.
  ``func`` returns a short summary dict; its ``"line"`` entry is printed.
* ``params(cfg, run)`` is the part of the config the outputs depend on (a change reruns it).
* ``kind`` chooses the ``slurm.gpu`` or ``slurm.cpu`` resources; ``training`` runs it through
  ``rstransfer launch`` with one Horovod rank per GPU.

Step modules import TensorFlow lazily (inside ``func``), so building the DAG stays fast.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rstransfer.core.errors import ConfigError, DataFormatError

STEPS = ("prepare", "pretrain", "finetune", "evaluate", "report")

Run = dict[str, Any]


def _one_run(cfg: dict[str, Any]) -> list[Run]:
    return [{}]


def _no_inputs(cfg: dict[str, Any], run: Run, layout: Any) -> dict[str, Any]:
    return {}


def _no_params(cfg: dict[str, Any], run: Run) -> Any:
    return {}


@dataclass(frozen=True)
class Step:
    """One step of a study (see the module docstring for the contract)."""

    func: Callable[[StepContext], dict[str, Any] | None]
    runs: Callable[[dict[str, Any]], list[Run]] = _one_run
    pattern: str = ""  # run folder below <results>/<study>/<step>/, e.g. "{policy}/seed{seed}"
    inputs: Callable[[dict[str, Any], Run, Any], dict[str, Any]] = _no_inputs
    params: Callable[[dict[str, Any], Run], Any] = _no_params
    kind: str = "cpu"  # "gpu" or "cpu": which slurm section's resources the job gets
    training: bool = False  # one Horovod rank per GPU (rstransfer launch)
    help: str = ""

    def wildcards(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.pattern)

    def run_path(self, run: Mapping[str, Any]) -> str:
        try:
            return self.pattern.format(**run)
        except KeyError as exc:
            raise ConfigError(f"--run: missing {exc.args[0]!r} for the pattern {self.pattern!r}") from None

    def parse_run(self, text: str | None) -> Run:
        """``"Network_2/seed0"`` -> ``{"policy": "Network_2", "seed": "0"}`` for this pattern."""
        text = text or ""
        regex = re.escape(self.pattern)
        for name in self.wildcards():
            regex = regex.replace(re.escape("{" + name + "}"), f"(?P<{name}>[^/]+)", 1)
        m = re.fullmatch(regex, text)
        if m is None:
            shape = self.pattern or "(none: this step has one run)"
            raise ConfigError(f"--run: {text!r} does not match {shape}")
        return m.groupdict()


@dataclass(frozen=True)
class Study:
    """A study: its config section (validated by ``schema``), policies and five steps."""

    name: str
    title: str
    schema: dict[str, Any]  # JSON schema of config[name]; every key with description + default
    steps: dict[str, Step]
    policies: Callable[[dict[str, Any]], list[str]] = lambda cfg: []
    check: Callable[[dict[str, Any]], None] = lambda cfg: None  # cross-key checks the schema cannot express
    enabled: Callable[[dict[str, Any]], bool] = field(default=None)  # type: ignore[assignment]
    report_page: str = "index.html"  # the page of the report step that the top-level index links
    # reference builds of every model the study trains (zero-argument callables returning an
    # uncompiled keras.Model): the Keras-3-on-JAX test builds each and compares parameter counts
    models: dict[str, Callable[[], Any]] = field(default_factory=dict)
    # ``rstransfer policies``: shape options (classes, bands, window) -> (title, rows of
    # core.policies.policy_table); None for a study without layer policies
    policy_table: Callable[[dict[str, int]], tuple[str, list[dict[str, Any]]]] | None = None
    # competition tasks of this study: task key -> rstransfer.leaderboard.Task (none: not ranked)
    leaderboard: dict[str, Any] = field(default_factory=dict)
    # `rstransfer download --study`: archives the study's real data come from, each
    # {"key": config key, "url", "sha256", "dest": folder, "extract": unzip after the checksum}
    downloads: Callable[[dict[str, Any]], list[dict[str, Any]]] = lambda cfg: []

    def is_enabled(self, cfg: dict[str, Any]) -> bool:
        if self.enabled is not None:
            return self.enabled(cfg)
        return bool(cfg.get(self.name, {}).get("enabled", False))

    def step(self, name: str) -> Step:
        if name not in STEPS:
            raise ConfigError(f"unknown step {name!r} (steps: {', '.join(STEPS)})")
        step = self.steps.get(name)
        if step is None:
            raise ConfigError(f"study {self.name!r} has no {name} step")
        return step

    def runs(self, cfg: dict[str, Any], step: str) -> list[Run]:
        return self.steps[step].runs(cfg) if step in self.steps else []


@dataclass
class StepContext:
    """What a step function gets: the config, its run, its inputs and where to write."""

    cfg: dict[str, Any]
    study: Study
    step: str
    run: Run
    inputs: dict[str, Any]
    out: Path  # staging folder: write every output here (rank 0 only)
    final: Path  # the run folder it becomes
    layout: Any
    threads: int | None = None

    @property
    def section(self) -> dict[str, Any]:
        return self.cfg[self.study.name]

    @property
    def checkpoint_dir(self) -> Path:
        """Hidden sibling of the run folder: not an output, so a time limit keeps it."""
        return self.final.parent / f".{self.final.name}.checkpoint"

    def input_digest(self) -> str:
        """Content digest of every input file (folders recursively), for checkpoint fingerprints:
        a changed split or pretrained model never resumes a stale checkpoint."""
        return digest_paths(_flatten(self.inputs))


def _flatten(inputs: Mapping[str, Any]) -> list[Path]:
    out: list[Path] = []
    for value in inputs.values():
        items = value if isinstance(value, list | tuple) else [value]
        out += [Path(v) for v in items]
    return out


def digest_paths(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for root in sorted(paths):
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for f in files:
            h.update(str(f.relative_to(root.parent) if root.is_dir() else f.name).encode())
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()[:16]


def lazy(module: str, func: str) -> Callable[[StepContext], Any]:
    """A step function imported only when the step runs (step modules import TensorFlow;
    the registry is read while Snakemake builds the DAG)."""

    def run(ctx: StepContext) -> Any:
        import importlib

        return getattr(importlib.import_module(module), func)(ctx)

    run.__qualname__ = f"{module}.{func}"
    return run


def rank() -> int:
    """This process's Horovod rank from the launcher's environment (0 outside Horovod)."""
    for key in ("HOROVOD_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK"):
        if key in os.environ:
            return int(os.environ[key])
    return 0


def resolve_inputs(study: Study, step: str, cfg: dict[str, Any], run: Run, layout: Any,
                   overrides: Mapping[str, str] | None = None) -> dict[str, Any]:
    inputs = dict(study.step(step).inputs(cfg, run, layout))
    for key, value in (overrides or {}).items():
        if key not in inputs:
            raise ConfigError(f"--input {key}: {study.name} {step} takes {sorted(inputs) or 'no inputs'}")
        inputs[key] = value
    for key, value in inputs.items():
        for p in value if isinstance(value, list | tuple) else [value]:
            if not Path(p).exists():
                raise DataFormatError(
                    f"{p}: missing input {key!r} of {study.name} {step} (run the step that makes it first, "
                    "or fix the data path in the config)"
                )
    return inputs


def run_step(
    cfg: dict[str, Any],
    study: Study,
    step: str,
    run: Run,
    layout: Any,
    out: Path | None = None,
    threads: int | None = None,
    input_overrides: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Run one step for one run and publish its folder as one unit (see module docstring)."""
    spec = study.step(step)
    study.check(cfg)
    declared = [spec.run_path(r) for r in study.runs(cfg, step)]
    if spec.run_path(run) not in declared:
        raise ConfigError(
            f"--run: {spec.run_path(run)!r} is not a run of {study.name} {step} in this config "
            f"(runs: {', '.join(declared) or 'none'})"
        )
    final = Path(out) if out else Path(layout.run_dir(study.name, step, spec.run_path(run)))
    inputs = resolve_inputs(study, step, cfg, run, layout, input_overrides)
    staging = final.parent / f".{final.name}.staging"
    root = rank() == 0
    if root:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    ctx = StepContext(cfg, study, step, dict(run), inputs, staging, final, layout, threads)
    try:
        summary = spec.func(ctx) or {}
    except BaseException:
        if root:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    if root:
        publish(staging, final)
        shutil.rmtree(ctx.checkpoint_dir, ignore_errors=True)  # the run is done: nothing to resume
    return summary


def publish(staging: Path, final: Path) -> None:
    """Replace ``final`` by ``staging`` as one unit: at every instant the run folder is either
    absent (first run), the old complete folder or the new complete one.

    With an old folder, the two are swapped by one atomic exchange (Linux ``renameat2``); where
    that is unavailable, the old folder is moved aside, the new one renamed in, and on an error
    in between the old one is put back (a hard kill exactly there leaves no run folder: the step
    reruns). The old folder is deleted last; a leftover hidden sibling is removed by the next run.
    """
    old = final.parent / f".{final.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if final.exists() and _exchange(staging, final):
        shutil.rmtree(staging, ignore_errors=True)  # now the old folder
        return
    try:
        if final.exists():
            os.rename(final, old)
        os.rename(staging, final)
    except BaseException:
        if old.exists() and not final.exists():
            os.rename(old, final)  # nothing lost: the old complete folder is back
        raise
    shutil.rmtree(old, ignore_errors=True)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two existing paths (``renameat2(RENAME_EXCHANGE)``); False where the
    platform or filesystem cannot."""
    import ctypes
    import errno
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # glibc < 2.28, musl
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV):
        return False  # e.g. NFS: the move-aside path below
    raise OSError(err, os.strerror(err), str(a), None, str(b))
