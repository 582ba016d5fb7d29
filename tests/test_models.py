"""HybridSN builder: layer names, shapes, pinned parameter count, serialisation, registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rstransfer.core.keras import keras
from rstransfer.models import count_params
from rstransfer.studies import load_all
from rstransfer.studies.hsi.model import build_hybridsn

PAPER_SHAPE = (25, 25, 30, 1)  # HybridSN on Indian Pines: 25x25 window, 30 PCA components
TINY_SHAPE = (9, 9, 13, 1)  # the smallest input HybridSN's kernels allow

LAYER_NAMES = [
    "patch",
    "conv3d_1",
    "conv3d_2",
    "conv3d_3",
    "reshape",
    "conv2d_1",
    "flatten",
    "dense_1",
    "dropout_1",
    "dense_2",
    "dropout_2",
    "dense_3",
]


@pytest.fixture(scope="module")
def paper_model() -> keras.Model:
    return build_hybridsn(PAPER_SHAPE, 16)


def _output_shape(layer: keras.layers.Layer) -> tuple[int | None, ...]:
    shape = layer.output.shape
    return tuple(None if d is None else int(d) for d in shape)


def test_layer_names_in_order(paper_model: keras.Model) -> None:
    assert [layer.name for layer in paper_model.layers] == LAYER_NAMES
    assert paper_model.name == "hybridsn"


def test_parameter_count_matches_the_paper(paper_model: keras.Model) -> None:
    assert count_params(paper_model.weights) == 5_122_176
    assert paper_model.count_params() == 5_122_176


def test_per_layer_parameter_counts(paper_model: keras.Model) -> None:
    expected = {
        "conv3d_1": 3 * 3 * 7 * 1 * 8 + 8,
        "conv3d_2": 3 * 3 * 5 * 8 * 16 + 16,
        "conv3d_3": 3 * 3 * 3 * 16 * 32 + 32,
        "conv2d_1": 3 * 3 * 576 * 64 + 64,
        "dense_1": 17 * 17 * 64 * 256 + 256,
        "dense_2": 256 * 128 + 128,
        "dense_3": 128 * 16 + 16,
    }
    got = {layer.name: count_params(layer.weights) for layer in paper_model.layers if layer.weights}
    assert got == expected


def test_layer_output_shapes(paper_model: keras.Model) -> None:
    shapes = {layer.name: _output_shape(layer) for layer in paper_model.layers}
    assert shapes == {
        "patch": (None, 25, 25, 30, 1),
        "conv3d_1": (None, 23, 23, 24, 8),
        "conv3d_2": (None, 21, 21, 20, 16),
        "conv3d_3": (None, 19, 19, 18, 32),
        "reshape": (None, 19, 19, 576),
        "conv2d_1": (None, 17, 17, 64),
        "flatten": (None, 18496),
        "dense_1": (None, 256),
        "dropout_1": (None, 256),
        "dense_2": (None, 128),
        "dropout_2": (None, 128),
        "dense_3": (None, 16),
    }


def test_head_is_softmax_over_classes() -> None:
    model = build_hybridsn(TINY_SHAPE, 5)
    x = np.random.default_rng(0).standard_normal((3, *TINY_SHAPE)).astype(np.float32)
    probs = model.predict(x, verbose=0)
    assert probs.shape == (3, 5)
    assert np.all(probs >= 0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert model.get_layer("dense_3").get_config()["activation"] == "softmax"


def test_inserted_dense_sits_before_the_head() -> None:
    model = build_hybridsn(PAPER_SHAPE, 16, inserted_dense=128)
    names = [layer.name for layer in model.layers]
    assert names == LAYER_NAMES[:-1] + ["dense_inserted", "dense_3"]
    inserted = model.get_layer("dense_inserted")
    assert inserted.units == 128
    assert inserted.get_config()["activation"] == "relu"
    assert _output_shape(inserted) == (None, 128)
    # the head now reads the inserted layer's 128 units
    assert model.get_layer("dense_3").input.shape[-1] == 128
    assert count_params(model.weights) == 5_122_176 + 128 * 128 + 128


def test_dropout_rate_is_configurable() -> None:
    model = build_hybridsn(TINY_SHAPE, 4, dropout=0.25)
    assert model.get_layer("dropout_1").rate == pytest.approx(0.25)
    assert model.get_layer("dropout_2").rate == pytest.approx(0.25)
    assert build_hybridsn(TINY_SHAPE, 4).get_layer("dropout_1").rate == pytest.approx(0.4)


@pytest.mark.parametrize(
    "shape",
    [
        (25, 24, 30, 1),  # not square
        (25, 25, 30, 2),  # two channels
        (25, 25, 30, 3),
        (7, 7, 30, 1),  # window below 9
        (25, 25, 12, 1),  # fewer than 13 components
    ],
)
def test_invalid_input_shapes_raise_value_error(shape: tuple[int, int, int, int]) -> None:
    with pytest.raises(ValueError, match=r"input_shape|window|components"):
        build_hybridsn(shape, 16)


def test_config_round_trip_rebuilds_the_same_model() -> None:
    model = build_hybridsn(TINY_SHAPE, 4, inserted_dense=32)
    clone = keras.Model.from_config(model.get_config())
    assert [layer.name for layer in clone.layers] == [layer.name for layer in model.layers]
    assert [_output_shape(layer) for layer in clone.layers] == [_output_shape(layer) for layer in model.layers]
    assert count_params(clone.weights) == count_params(model.weights)
    clone.set_weights(model.get_weights())
    x = np.random.default_rng(1).standard_normal((4, *TINY_SHAPE)).astype(np.float32)
    np.testing.assert_array_equal(clone.predict(x, verbose=0), model.predict(x, verbose=0))


def test_keras_file_round_trip_gives_identical_predictions(tmp_path: Path) -> None:
    model = build_hybridsn(TINY_SHAPE, 6, name="roundtrip")
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path, compile=False)
    assert loaded.name == "roundtrip"
    assert [layer.name for layer in loaded.layers] == LAYER_NAMES
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    x = np.random.default_rng(2).standard_normal((8, *TINY_SHAPE)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_builder_does_not_compile() -> None:
    model = build_hybridsn(TINY_SHAPE, 4)
    assert model.optimizer is None


def test_every_study_model_builds_uncompiled_with_stable_names() -> None:
    """Each study's reference builders: an uncompiled keras.Model, same layer names on a rebuild."""
    studies = load_all()
    assert studies["hsi"].models["hybridsn"]().count_params() == 5_122_176
    for study in studies.values():
        for name, build in study.models.items():
            if name == "resnet50_fcn":
                continue  # 23.6 M parameters: built in tests/test_fcn.py
            model = build()
            assert model.optimizer is None, f"{study.name}/{name} is compiled"
            assert [layer.name for layer in model.layers] == [layer.name for layer in build().layers]
