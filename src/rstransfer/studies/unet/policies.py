"""Learning-rate-factor policies of the U-Net study, as data (MATLAB's learn-rate factors).

Each policy gives every layer a factor by name pattern (``rstransfer.core.lr_factors``): 0
freezes the layer (``trainable = False``, BatchNorm in inference mode), any other factor
trains it with its own optimizer at ``learning rate x factor``. The head (``head_*``) is always
new: ``finetune`` replaces it before training.

``unprotected`` is the forum thread's failure: every layer at factor 1 with the learning rate
of pre-training (``lr_from = "pretrain"``), so the random head's large early gradients flow
into the pretrained encoder and decoder at full rate. The report puts it next to the
pretrained model and ``head_only`` (the thread's advice).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rstransfer.core.lr_factors import LRFactors


@dataclass(frozen=True)
class FactorPolicy:
    name: str
    factors: LRFactors
    lr_from: str = "finetune"  # whose learning rate is the base: "finetune" or "pretrain"
    description: str = ""


ENCODER = ("enc*", "bridge_*")
DECODER = ("dec*",)
HEAD = ("head_*",)

POLICIES: dict[str, FactorPolicy] = {
    p.name: p
    for p in (
        FactorPolicy(
            "head_only", LRFactors((("head_*", 10.0),), default=0.0),
            description="pretrained layers 0, new head 10 (the thread's advice)",
        ),
        FactorPolicy(
            "decoder", LRFactors((("head_*", 10.0), ("dec*", 1.0)), default=0.0),
            description="encoder and bridge 0, decoder 1, new head 10",
        ),
        FactorPolicy("all", LRFactors(default=1.0), description="every layer 1 (head included)"),
        FactorPolicy(
            "unprotected", LRFactors(default=1.0), lr_from="pretrain",
            description="every layer 1 at the pre-training learning rate (nothing protects the pretrained layers)",
        ),
    )
}

#: the evaluate step's name for the pretrained model itself (never a policy name)
PRETRAINED = "pretrained"


def get_policy(name: str) -> FactorPolicy:
    from rstransfer.core.policies import get_policy as lookup

    return lookup(POLICIES, name, "unet")  # type: ignore[arg-type]


def stage_factors(policy: FactorPolicy) -> dict[str, float]:
    """The factor of a representative layer of each stage (for the report's table)."""
    return {
        "encoder": policy.factors.factor("enc1_conv1"),
        "decoder": policy.factors.factor("dec1_conv1"),
        "head": policy.factors.factor("head_conv"),
    }


def policy_table(shape: dict[str, int]) -> tuple[str, list[dict[str, Any]]]:
    """``rstransfer policies --study unet``: trainable (factor > 0) parameters per policy for a
    U-Net of the thread's reference shape (6 bands, 18 classes, 256 px) or the given one."""
    from rstransfer.core.lr_factors import apply_factors
    from rstransfer.models import count_params

    from .model import build_unet

    w, b, c = shape.get("window", 256), shape.get("bands", 6), shape.get("classes", 18)
    rows = []
    for policy in POLICIES.values():
        model = build_unet((w, w, b), c, depth=4, base_filters=32)
        apply_factors(model, policy.factors)
        trainable, total = count_params(model.trainable_weights), count_params(model.weights)
        rows.append({"policy": policy.name, "trainable_params": trainable, "total_params": total,
                     "trainable_ratio": trainable / total, "trainable_layers": policy.factors.describe()})
    return f"unet: input {w}x{w}x{b}, {c} classes, depth 4, 32 base filters", rows
