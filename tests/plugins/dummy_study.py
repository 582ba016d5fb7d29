"""A tiny study that exists only in the tests: registered through $RSTRANSFER_STUDY_MODULES,
it proves that a study needs a package, one registry entry and one schema section, and no
change to workflow/rules/*.smk or cli.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rstransfer.core.errors import DataFormatError
from rstransfer.core.study import Step, StepContext, Study
from rstransfer.studies import register

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "description": "The test-only dummy study.",
    "properties": {
        "enabled": {"type": "boolean", "default": False, "description": "Run it."},
        "policies": {"type": "array", "items": {"type": "string"}, "default": ["a", "b"], "description": "Policies."},
        "fail_in": {"type": "string", "default": "", "description": "A run whose finetune fails half-way (tests)."},
    },
}


def _write(ctx: StepContext, **extra: Any) -> dict[str, Any]:
    record = {"step": ctx.step, "run": ctx.run, "inputs": sorted(ctx.inputs), **extra}
    (ctx.out / "out.json").write_text(json.dumps(record))
    return {"line": f"{ctx.step} {ctx.run}"}


def finetune(ctx: StepContext) -> dict[str, Any]:
    (ctx.out / "first.txt").write_text("written before the failure")
    if ctx.run["policy"] == ctx.section["fail_in"]:
        raise DataFormatError(f"dummy: injected failure in {ctx.run['policy']}")
    return _write(ctx)


def _runs(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"policy": p, "seed": 0} for p in cfg["dummy"]["policies"]]


def _dir(layout: Any, step: str, run: dict[str, Any]) -> str:
    return layout.run_dir("dummy", step, f"{run['policy']}/seed{run['seed']}")


STUDY = register(
    Study(
        name="dummy",
        title="Dummy study (tests only)",
        schema=SCHEMA,
        policies=lambda cfg: cfg["dummy"]["policies"],
        steps={
            "prepare": Step(_write),
            "pretrain": Step(_write, inputs=lambda cfg, run, layout: {"data": layout.run_dir("dummy", "prepare")},
                             kind="gpu", training=True),
            "finetune": Step(finetune, runs=_runs, pattern="{policy}/seed{seed}", kind="gpu", training=True,
                             inputs=lambda cfg, run, layout: {"pretrained": layout.run_dir("dummy", "pretrain")}),
            "evaluate": Step(_write, runs=_runs, pattern="{policy}/seed{seed}", kind="gpu",
                             inputs=lambda cfg, run, layout: {"run": _dir(layout, "finetune", run)}),
            "report": Step(lambda ctx: (Path(ctx.out / "index.html").write_text("<h1>dummy</h1>"), {"line": "ok"})[1],
                           inputs=lambda cfg, run, layout: {"runs": [_dir(layout, "evaluate", r) for r in _runs(cfg)]}),
        },
    )
)
