"""What ``workflow/rules/steps.smk`` asks of a study's step: inputs, settings and the command.

Each helper returns a function of the rule's wildcards (as Snakemake input/params functions
take), bound to one (config, study, step). No TensorFlow is imported here.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any

from rstransfer.core.paths import Layout
from rstransfer.core.study import Study


def _run(wildcards: Any) -> dict[str, str]:
    return {k: str(v) for k, v in dict(wildcards).items()}


def step_inputs(config: dict[str, Any], study: Study, step: str) -> Callable[[Any], dict[str, Any]]:
    """Input function: the run's inputs by name (paths or lists of paths)."""

    def inputs(wildcards: Any) -> dict[str, Any]:
        return dict(study.steps[step].inputs(config, _run(wildcards), Layout.from_config(config)))

    return inputs


def step_params(config: dict[str, Any], study: Study, step: str) -> Callable[[Any], Any]:
    """Params function: the settings the run's outputs depend on (a change reruns it)."""

    def params(wildcards: Any) -> Any:
        return study.steps[step].params(config, _run(wildcards))

    return params


def step_cli(config: dict[str, Any], study: Study, step: str) -> Callable[[Any], str]:
    """The command (without --config/--out/--threads): the same CLI call a jobs/ script makes.
    Training steps go through ``rstransfer launch`` (Horovod ranks when configured)."""
    spec = study.steps[step]

    def cli(wildcards: Any) -> str:
        run = spec.run_path(_run(wildcards))
        call = f"{step} --study {shlex.quote(study.name)}" + (f" --run {shlex.quote(run)}" if run else "")
        if spec.training:
            effective = Layout.from_config(config).effective_config()
            return f"rstransfer launch --config {shlex.quote(effective)} -- {call}"
        return f"rstransfer {call}"

    return cli
