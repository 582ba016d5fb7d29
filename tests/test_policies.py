"""Fine-tuning policies: which layers train, pinned trainable-parameter counts (Table 5),
weight transfer between scenes, and that frozen layers really stay put during training."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import numpy as np
import pytest

from rstransfer.core import dist as dist_mod
from rstransfer.core.config import load_schema
from rstransfer.models import count_params
from rstransfer.studies.hsi.model import build_hybridsn
from rstransfer.core.errors import ConfigError
from rstransfer.core.policies import apply_policy, policy_table, transfer_weights
from rstransfer.core.policies import get_policy as _get_policy
from rstransfer.studies.hsi.policies import POLICIES

# the HybridSN part of the one policy table (the FCN policies are tested in test_fcn.py)
from rstransfer.core.fit import compile_model
from rstransfer.studies.hsi.train import build_finetune_model


def get_policy(name: str):
    return _get_policy(POLICIES, name, "hsi")

PAPER_SHAPE = (25, 25, 30, 1)
TINY_SHAPE = (9, 9, 13, 1)
WEIGHTED = {"conv3d_1", "conv3d_2", "conv3d_3", "conv2d_1", "dense_1", "dense_2", "dense_3"}

# the policy table of the issue (Table 3 of the fine-tuning paper)
TRAINABLE = {
    "Original": WEIGHTED,
    "Network_1": {"dense_inserted", "dense_3"},
    "Network_2": {"dense_3"},
    "Network_3": {"dense_3", "dense_2"},
    "Network_4": {"dense_3", "dense_2", "dense_1"},
    "Network_5": {"dense_3", "dense_2", "dense_1", "conv2d_1"},
    "Network_6": {"dense_3", "conv2d_1"},
    "Network_7": {"dense_3", "dense_2", "dense_1", "conv2d_1", "conv3d_3"},
}

# trainable parameters for a 25x25x30x1 input and 16 classes (Table 5), and the totals
PARAMS = {
    "Original": (5_122_176, 5_122_176),
    "Network_1": (18_576, 5_138_688),
    "Network_2": (2_064, 5_122_176),
    "Network_3": (34_960, 5_122_176),
    "Network_4": (4_770_192, 5_122_176),
    "Network_5": (5_102_032, 5_122_176),
    "Network_6": (333_904, 5_122_176),
    "Network_7": (5_115_888, 5_122_176),
}


def _model_for(policy_name: str, shape: tuple[int, int, int, int] = TINY_SHAPE, n_classes: int = 4):
    policy = get_policy(policy_name)
    return apply_policy(build_hybridsn(shape, n_classes, inserted_dense=policy.inserted_dense), policy)


def test_registry_is_the_issue_table() -> None:
    assert list(POLICIES) == list(TRAINABLE)
    assert {p.model for p in POLICIES.values()} == {"hybridsn"}
    assert {name for name, p in POLICIES.items() if p.from_scratch} == {"Original"}
    assert {name: p.inserted_dense for name, p in POLICIES.items() if p.inserted_dense} == {"Network_1": 128}


@pytest.mark.parametrize("policy_name", list(TRAINABLE))
def test_trainable_layer_set(policy_name: str) -> None:
    model = _model_for(policy_name)
    trainable_weighted = {layer.name for layer in model.layers if layer.weights and layer.trainable}
    assert trainable_weighted == TRAINABLE[policy_name]
    if policy_name != "Original":
        # exact names, never by index: nothing else (reshape, dropout...) is marked trainable
        assert {layer.name for layer in model.layers if layer.trainable} == TRAINABLE[policy_name]
    # the trainable weights are exactly those of the trainable layers
    expected = sum(count_params(model.get_layer(n).weights) for n in TRAINABLE[policy_name])
    assert count_params(model.trainable_weights) == expected
    assert count_params(model.non_trainable_weights) == count_params(model.weights) - expected


def test_policies_do_not_depend_on_layer_order() -> None:
    """Policies select by name: applying one after another leaves only the last one's layers."""
    model = build_hybridsn(TINY_SHAPE, 4)
    apply_policy(model, get_policy("Network_7"))
    apply_policy(model, get_policy("Network_2"))
    assert {layer.name for layer in model.layers if layer.trainable} == {"dense_3"}


def test_policy_table_pins_table5() -> None:
    rows = policy_table(POLICIES, lambda p: build_hybridsn(PAPER_SHAPE, 16, inserted_dense=p.inserted_dense))
    assert [r["policy"] for r in rows] == list(PARAMS)
    got = {r["policy"]: (r["trainable_params"], r["total_params"]) for r in rows}
    assert got == PARAMS
    for r in rows:
        assert r["trainable_ratio"] == pytest.approx(r["trainable_params"] / r["total_params"])
        assert 0 < r["trainable_ratio"] <= 1
        assert r["trainable_layers"]  # a description for the report


def test_unknown_policy_lists_the_valid_names() -> None:
    with pytest.raises(ConfigError, match=r"unknown policy 'Network_9' for hsi.*Network_1"):
        get_policy("Network_9")


def test_cli_policies_prints_table5(run_cli: Callable[..., tuple[int, str, str]]) -> None:
    rc, out, err = run_cli("policies", "--study", "hsi", "--classes", 16, "--bands", 30, "--window", 25)
    assert rc == 0, err
    assert "25x25x30x1" in out and "16 classes" in out
    rows = {}
    for line in out.splitlines():
        m = re.match(r"^(Original|Network_\d)\s+([\d,]+)\s+([\d,]+)\s+([\d.]+)%", line)
        if m:
            rows[m.group(1)] = (int(m.group(2).replace(",", "")), int(m.group(3).replace(",", "")))
    assert rows == PARAMS


def test_cli_policies_json(run_cli: Callable[..., tuple[int, str, str]]) -> None:
    rc, out, err = run_cli("policies", "--classes", 16, "--bands", 30, "--window", 25, "--json")
    assert rc == 0, err
    rows = json.loads(out)  # stdout is pure JSON
    assert {r["policy"]: (r["trainable_params"], r["total_params"]) for r in rows} == PARAMS
    assert {r["policy"] for r in rows} == set(POLICIES)


def test_transfer_copies_everything_but_a_head_of_another_size() -> None:
    source = build_hybridsn(TINY_SHAPE, 8)
    target = build_hybridsn(TINY_SHAPE, 4)
    fresh_head = [w.copy() for w in target.get_layer("dense_3").get_weights()]
    copied = transfer_weights(source, target)
    assert set(copied) == WEIGHTED - {"dense_3"}
    for name in copied:
        for a, b in zip(source.get_layer(name).get_weights(), target.get_layer(name).get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
    # the head keeps its fresh initialisation (and differs from the source's)
    head = target.get_layer("dense_3").get_weights()
    for a, b in zip(fresh_head, head, strict=True):
        np.testing.assert_array_equal(a, b)
    assert head[0].shape == (128, 4) and source.get_layer("dense_3").get_weights()[0].shape == (128, 8)


def test_finetuning_never_copies_the_head_by_default() -> None:
    """Equal class counts say nothing about what the classes mean (Indian Pines -> Salinas, 16 -> 16)."""
    source = build_hybridsn(TINY_SHAPE, 4)
    model, copied = build_finetune_model(get_policy("Network_2"), TINY_SHAPE, 4, source)
    assert "dense_3" not in copied and set(copied) == WEIGHTED - {"dense_3"}
    assert not np.array_equal(model.get_layer("dense_3").get_weights()[0], source.get_layer("dense_3").get_weights()[0])
    model, copied = build_finetune_model(get_policy("Network_2"), TINY_SHAPE, 4, source, copy_head=True)
    assert "dense_3" in copied


def test_head_copy_needs_the_option_and_equal_class_names(tmp_path) -> None:
    from types import SimpleNamespace

    from rstransfer.studies.hsi.train import head_copy_allowed

    target = SimpleNamespace(class_names=("a", "b"))
    assert not head_copy_allowed({"hsi": {"copy_head": False}}, ["a", "b"], target)
    assert not head_copy_allowed({"hsi": {"copy_head": True}}, ["a", "c"], target)
    assert head_copy_allowed({"hsi": {"copy_head": True}}, ["a", "b"], target)


def test_transfer_copies_the_head_when_class_counts_match() -> None:
    source = build_hybridsn(TINY_SHAPE, 4)
    target = build_hybridsn(TINY_SHAPE, 4)
    assert not np.array_equal(source.get_layer("dense_3").get_weights()[0], target.get_layer("dense_3").get_weights()[0])
    copied = transfer_weights(source, target)
    assert set(copied) == WEIGHTED
    for a, b in zip(source.get_weights(), target.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    x = np.random.default_rng(0).standard_normal((3, *TINY_SHAPE)).astype(np.float32)
    np.testing.assert_array_equal(source.predict(x, verbose=0), target.predict(x, verbose=0))


def test_inserted_layer_keeps_its_fresh_weights() -> None:
    source = build_hybridsn(TINY_SHAPE, 8)
    model, copied = build_finetune_model(get_policy("Network_1"), TINY_SHAPE, 4, source)
    assert "dense_inserted" not in copied
    assert set(copied) == WEIGHTED - {"dense_3"}
    assert {layer.name for layer in model.layers if layer.trainable} == {"dense_inserted", "dense_3"}


def test_original_starts_from_scratch() -> None:
    source = build_hybridsn(TINY_SHAPE, 4)
    model, copied = build_finetune_model(get_policy("Original"), TINY_SHAPE, 4, source)
    assert copied == []
    assert not np.array_equal(model.get_layer("conv3d_1").get_weights()[0], source.get_layer("conv3d_1").get_weights()[0])
    with pytest.raises(ConfigError, match="needs a pretrained model"):
        build_finetune_model(get_policy("Network_2"), TINY_SHAPE, 4, None)


@pytest.mark.parametrize("policy_name", ["Network_2", "Network_6", "Network_7"])
def test_training_step_moves_only_trainable_layers(policy_name: str) -> None:
    source = build_hybridsn(TINY_SHAPE, 4)
    model, _ = build_finetune_model(get_policy(policy_name), TINY_SHAPE, 4, source)
    fit_cfg = {"optimizer": "adam", "learning_rate": 0.01}
    compile_model(model, fit_cfg, dist_mod.init("none"))
    before = {layer.name: [w.copy() for w in layer.get_weights()] for layer in model.layers if layer.weights}

    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, *TINY_SHAPE)).astype(np.float32)
    y = rng.integers(0, 4, 32).astype(np.int32)
    for _ in range(2):
        model.train_on_batch(x, y)

    for name, weights in before.items():
        after = model.get_layer(name).get_weights()
        unchanged = all(np.array_equal(a, b) for a, b in zip(weights, after, strict=True))
        if name in TRAINABLE[policy_name]:
            assert not unchanged, f"{name} is trainable under {policy_name} but did not change"
        else:
            assert unchanged, f"{name} is frozen under {policy_name} but changed"


def test_cli_policies_unknown_study_or_none(run_cli: Callable[..., tuple[int, str, str]]) -> None:
    rc, out, err = run_cli("policies", "--study", "foo", "--classes", 4)
    assert rc == 2 and out == "" and err.count("\n") == 1 and "unknown study 'foo'" in err


def test_registry_matches_schema_enum() -> None:
    hsi = load_schema()["properties"]["hsi"]["properties"]["policies"]
    assert sorted(POLICIES) == sorted(hsi["items"]["enum"])
    assert hsi["default"] == list(POLICIES)
