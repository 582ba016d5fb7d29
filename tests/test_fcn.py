"""ResNet50-FCN: pinned parameter count, own layer names, policies (and frozen BatchNorm),
pretrained weights from a file / the local ImageNet file (never downloaded), stitching."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import numpy as np
import pytest

from rstransfer.core import dist as dist_mod
from rstransfer.core.config import load_schema
from rstransfer.core.errors import ConfigError, DataFormatError, DatasetNotFoundError
from rstransfer.core.fit import compile_model
from rstransfer.core.keras import keras
from rstransfer.core.policies import apply_policy, get_policy
from rstransfer.models import count_params
from rstransfer.studies import get_study
from rstransfer.studies.segmentation.evaluate import predict_tile
from rstransfer.studies.segmentation.model import IMAGENET_FILE, OWN_LAYERS, backbone_of, build_resnet50_fcn, resolve_weights
from rstransfer.studies.segmentation.policies import POLICIES

SMALL = (32, 32, 3)
FIT = {"optimizer": "sgd", "learning_rate": 0.1}
HEADS = {"fcn_score3", "fcn_score4", "fcn_score5"}


@pytest.fixture(scope="module")
def small() -> keras.Model:
    return build_resnet50_fcn(SMALL, 6)


def weighted(model: keras.Model) -> dict[str, keras.layers.Layer]:
    return {layer.name: layer for layer in model.layers if layer.weights}


def test_parameter_count_256_six_classes() -> None:
    model = build_resnet50_fcn((256, 256, 3), 6)
    assert count_params(model.weights) == 23_609_234
    assert model.output_shape == (None, 256, 256, 6)
    assert model.name == "resnet50_fcn"
    # the study's reference build (the registry's models, replacing rstransfer.models.MODELS) is this model
    reference = get_study("segmentation").models["resnet50_fcn"]()
    assert reference.name == "resnet50_fcn" and reference.output_shape == (None, 256, 256, 6)
    assert count_params(reference.weights) == 23_609_234
    assert [layer.name for layer in reference.layers] == [layer.name for layer in model.layers]


def test_own_layers_are_exactly_the_fcn_layers(small: keras.Model) -> None:
    plain = keras.applications.ResNet50(include_top=False, weights=None, input_shape=SMALL)
    ours = {layer.name for layer in small.layers}
    assert ours - {layer.name for layer in plain.layers} == OWN_LAYERS
    assert OWN_LAYERS == {
        "fcn_input", "fcn_score3", "fcn_score4", "fcn_score5", "fcn_up3", "fcn_up4", "fcn_up5", "fcn_sum", "fcn_softmax",
    }
    assert {n for n in ours if n.startswith("fcn_")} == OWN_LAYERS
    # the heads tap the three named stages, 1x1 convolutions to the class count
    for stage, channels in ((3, 512), (4, 1024), (5, 2048)):
        layer = small.get_layer(f"fcn_score{stage}")
        assert layer.kernel.shape == (1, 1, channels, 6)
    assert {layer.name for layer in small.layers if layer.name.endswith("_out")} >= {
        "conv3_block4_out", "conv4_block6_out", "conv5_block3_out",
    }


def test_softmax_output_and_registry(small: keras.Model) -> None:
    x = np.random.default_rng(0).normal(size=(2, *SMALL)).astype(np.float32)
    y = small.predict(x, verbose=0)
    assert y.shape == (2, 32, 32, 6)
    np.testing.assert_allclose(y.sum(-1), 1.0, rtol=1e-5)
    study = get_study("segmentation")
    seg = load_schema()["properties"]["segmentation"]["properties"]
    assert set(seg["model"]["enum"]) <= set(study.models)
    policy_enum = seg["experiments"]["additionalProperties"]["properties"]["policy"]["enum"]
    # the study's policy table holds the resnet50_fcn policies only, in the schema's order
    assert all(p.model == "resnet50_fcn" for p in POLICIES.values())
    assert policy_enum == list(POLICIES) == study.policies({})
    with pytest.raises(ConfigError, match="unknown policy 'Network_2' for segmentation; valid: fcn_heads"):
        get_policy(POLICIES, "Network_2", "segmentation")
    assert seg["experiments"]["default"] == {
        "scratch_aug": {"pretrained": "none", "augment": True, "policy": "fcn_all"},
        "imagenet_aug": {"pretrained": "imagenet", "augment": True, "policy": "fcn_all"},
    }


@pytest.mark.parametrize(
    "name,patterns,expected_trainable",
    [("fcn_heads", ("fcn_*",), 21_522), ("fcn_stage5", ("conv5_*", "fcn_*"), 14_997_522), ("fcn_all", ("*",), 23_556_114)],
)
def test_policies_freeze_exactly_what_they_name(
    small: keras.Model, name: str, patterns: tuple[str, ...], expected_trainable: int
) -> None:
    policy = POLICIES[name]
    assert policy.model == "resnet50_fcn" and policy.trainable == patterns
    apply_policy(small, policy)
    for layer in small.layers:
        assert layer.trainable == any(fnmatch.fnmatchcase(layer.name, p) for p in patterns), layer.name
    trainable = {n for n, layer in weighted(small).items() if layer.trainable}
    if name == "fcn_heads":
        assert trainable == HEADS
    if name == "fcn_stage5":
        assert trainable == HEADS | {n for n in weighted(small) if n.startswith("conv5_")}
        assert any(n.startswith("conv5_block3_") for n in trainable)
    # 23,609,234 in all at 256 px; the 1x1 heads do not depend on the input size
    assert count_params(small.trainable_weights) == expected_trainable
    apply_policy(small, get_policy(POLICIES, "fcn_all"))


def _train_one_step(model: keras.Model) -> None:
    compile_model(model, FIT, dist_mod.Dist())
    model.run_eagerly = True  # one step without tracing the whole graph
    rng = np.random.default_rng(1)
    model.train_on_batch(rng.normal(size=(2, *SMALL)).astype(np.float32), rng.integers(0, 6, (2, 32, 32)))


def test_frozen_layers_and_their_batchnorm_stay_put() -> None:
    """Heads only: every backbone weight, BatchNorm moving statistics included, is unchanged
    after a training step (frozen BN runs in inference mode); stage 5 + heads: stage 4's BN
    statistics stay, stage 5's move."""
    for policy, moving in (("fcn_heads", set()), ("fcn_stage5", {"conv5_block1_1_bn"})):
        model = build_resnet50_fcn(SMALL, 6)
        apply_policy(model, get_policy(POLICIES, policy))
        before = {n: [w.copy() for w in layer.get_weights()] for n, layer in weighted(model).items()}
        _train_one_step(model)
        for n, layer in weighted(model).items():
            same = all(np.array_equal(a, b) for a, b in zip(before[n], layer.get_weights(), strict=True))
            if n in HEADS:
                assert not same, n
            elif not layer.trainable:
                assert same, f"{policy}: frozen layer {n} changed"
        for n in moving:  # a trainable BN updates its moving mean in training mode
            assert not np.array_equal(before[n][2], model.get_layer(n).get_weights()[2])
        bn4 = model.get_layer("conv4_block6_3_bn")
        assert not bn4.trainable and all(
            np.array_equal(a, b) for a, b in zip(before["conv4_block6_3_bn"], bn4.get_weights(), strict=True)
        )


def test_pretrained_from_a_saved_backbone_file(tmp_path: Path) -> None:
    source = keras.applications.ResNet50(include_top=False, weights=None, input_shape=SMALL)
    rng = np.random.default_rng(2)
    source.set_weights([w + rng.normal(0, 0.01, w.shape).astype(w.dtype) for w in source.get_weights()])
    path = tmp_path / "backbone_notop.h5"
    source.save_weights(str(path))
    model = build_resnet50_fcn(SMALL, 6, weights=str(path))
    for a, b in zip(source.get_weights(), backbone_of(model).get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    # an FCN weights file works too: the backbone is copied, the heads are not
    fcn_file = tmp_path / "weights.h5"
    model.save_weights(str(fcn_file), save_format="h5")
    other = build_resnet50_fcn(SMALL, 4, weights=str(fcn_file))
    for a, b in zip(source.get_weights(), backbone_of(other).get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert other.get_layer("fcn_score5").kernel.shape[-1] == 4


def test_imagenet_is_the_local_keras_file_and_never_downloads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    expected = tmp_path / "kh" / "models" / IMAGENET_FILE
    with pytest.raises(DatasetNotFoundError) as info:
        build_resnet50_fcn(SMALL, 6, weights="imagenet")
    msg = str(info.value)
    assert f"{expected} not found" in msg and "nothing is downloaded" in msg and "\n" not in msg
    # with the file in place (here a saved backbone standing in for the real one) it loads
    source = keras.applications.ResNet50(include_top=False, weights=None, input_shape=SMALL)
    expected.parent.mkdir(parents=True)
    source.save_weights(str(expected))
    assert resolve_weights("imagenet") == expected
    model = build_resnet50_fcn(SMALL, 6, weights="imagenet")
    for a, b in zip(source.get_weights(), backbone_of(model).get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_bad_weights_files(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="no-such.h5 not found"):
        build_resnet50_fcn(SMALL, 6, weights=str(tmp_path / "no-such.h5"))
    junk = tmp_path / "junk.h5"
    junk.write_text("not hdf5")
    with pytest.raises(DataFormatError, match="not a Keras HDF5 weights file"):
        build_resnet50_fcn(SMALL, 6, weights=str(junk))
    small = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="conv1_conv")])
    partial = tmp_path / "partial.h5"
    small.save_weights(str(partial))
    with pytest.raises(DataFormatError, match="not ResNet50 backbone weights: .* missing"):
        build_resnet50_fcn(SMALL, 6, weights=str(partial))
    with pytest.raises(ValueError, match="multiple of 32"):
        build_resnet50_fcn((48, 48, 3), 6)


def test_stitching_equals_direct_prediction_without_overlap(small: keras.Model) -> None:
    rng = np.random.default_rng(3)
    tile = rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)
    from rstransfer.studies.segmentation.patches import normalize

    probs = predict_tile(small, tile, 32, 0.0, batch_size=4)  # 6 windows: a full and a padded batch
    x = normalize(tile)
    windows = np.stack([x[r : r + 32, c : c + 32] for r in (0, 32) for c in (0, 32, 64)])
    direct = small.predict(windows, verbose=0)
    expected = np.zeros((64, 96, 6), dtype=np.float32)
    for i, (r, c) in enumerate((r, c) for r in (0, 32) for c in (0, 32, 64)):
        expected[r : r + 32, c : c + 32] = direct[i]
    np.testing.assert_allclose(probs, expected, rtol=1e-4, atol=1e-5)
    # with overlap, every pixel is a mean of softmax outputs: still a distribution
    over = predict_tile(small, tile, 32, 0.5, batch_size=4)
    np.testing.assert_allclose(over.sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(over[:16, :16], direct[0][:16, :16], rtol=1e-4, atol=1e-5)  # one window only


def test_config_round_trip_keeps_names_and_weights(small: keras.Model) -> None:
    clone = keras.Model.from_config(small.get_config())
    assert [layer.name for layer in clone.layers] == [layer.name for layer in small.layers]
    clone.set_weights(small.get_weights())
    x = np.random.default_rng(4).normal(size=(1, *SMALL)).astype(np.float32)
    np.testing.assert_allclose(clone.predict(x, verbose=0), small.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
