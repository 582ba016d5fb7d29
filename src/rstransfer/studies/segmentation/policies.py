"""ResNet50-FCN fine-tuning policies: the experiment's ``pretrained`` decides the starting
weights; frozen BatchNormalization layers run in inference mode (tf_keras, trainable=False)."""

from __future__ import annotations

from rstransfer.core.policies import Policy, table

POLICIES = table(
    Policy("fcn_heads", "resnet50_fcn", ("fcn_*",), description="the 1x1 score heads (fcn_*)"),
    Policy("fcn_stage5", "resnet50_fcn", ("conv5_*", "fcn_*"), description="ResNet50 stage 5 (conv5_*) + heads"),
    Policy("fcn_all", "resnet50_fcn", ("*",), description="every layer"),
)
