"""The multispectral U-Net study: replace the head, keep every skip connection, retrain under
per-layer learning-rate factors, and show every policy next to the pretrained model.

Importing this package imports no TensorFlow (the Snakefile reads the registry).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from rstransfer.core.study import Step, Study
from rstransfer.studies import register

from . import steps

SCHEMA = yaml.safe_load((Path(__file__).with_name("schema.yaml")).read_text())


def _report(ctx):
    from .report import report

    return report(ctx)


def _policy_table(shape):
    from .policies import policy_table

    return policy_table(shape)


def _reference_unet():
    """The thread's reference configuration: 6 bands, 18 classes, encoder depth 4."""
    from .model import build_unet

    return build_unet((256, 256, 6), 18, depth=4, base_filters=32, dropout=0.5)


STUDY = register(
    Study(
        name="unet",
        title="Multispectral U-Net: learning-rate factors after head replacement",
        schema=SCHEMA,
        policies=lambda cfg: list(cfg["unet"]["policies"]),
        check=steps.check,
        models={"unet": _reference_unet},
        policy_table=_policy_table,
        steps={
            "prepare": Step(steps.prepare, inputs=steps.prepare_inputs, params=steps.prepare_params,
                            help="read the scene, remap class ids, cut the row stripes, scale the bands"),
            "pretrain": Step(steps.pretrain, inputs=steps.pretrain_inputs, params=steps.pretrain_params,
                             kind="gpu", training=True, help="train the U-Net on random patches of the train stripe"),
            "finetune": Step(steps.finetune, runs=steps.finetune_runs, pattern="{policy}/seed{seed}",
                             inputs=steps.finetune_inputs, params=steps.finetune_params, kind="gpu", training=True,
                             help="replace the head, retrain on the same data under a learning-rate-factor policy"),
            "evaluate": Step(steps.evaluate, runs=steps.evaluate_runs, pattern="{policy}/seed{seed}",
                             inputs=steps.evaluate_inputs, params=steps.evaluate_params, kind="gpu",
                             help="pixel accuracy, per-class IoU, mIoU, confusion and prediction maps"),
            "report": Step(_report, inputs=steps.report_inputs, help="every policy next to the pretrained model"),
        },
    )
)
