"""The eight layer-freezing policies of the HybridSN fine-tuning paper (Table 5), as data."""

from __future__ import annotations

from rstransfer.core.policies import Policy, table

POLICIES = table(
    Policy("Original", "hybridsn", ("*",), from_scratch=True, description="all layers, from scratch"),
    Policy(
        "Network_1", "hybridsn", ("dense_inserted", "dense_3"), inserted_dense=128,
        description="Dense_3 + an added Dense(128, ReLU) before it",
    ),
    Policy("Network_2", "hybridsn", ("dense_3",), description="Dense_3"),
    Policy("Network_3", "hybridsn", ("dense_3", "dense_2"), description="Dense_3, Dense_2"),
    Policy("Network_4", "hybridsn", ("dense_3", "dense_2", "dense_1"), description="Dense_3, Dense_2, Dense_1"),
    Policy(
        "Network_5", "hybridsn", ("dense_3", "dense_2", "dense_1", "conv2d_1"),
        description="Dense_3, Dense_2, Dense_1, Conv2d_1",
    ),
    Policy("Network_6", "hybridsn", ("dense_3", "conv2d_1"), description="Dense_3, Conv2d_1"),
    Policy(
        "Network_7", "hybridsn", ("dense_3", "dense_2", "dense_1", "conv2d_1", "conv3d_3"),
        description="Dense_3, Dense_2, Dense_1, Conv2d_1, Conv3d_3",
    ),
)
