"""U-Net builder, head replacement and band inflation (rstransfer.studies.unet.model).

* The reference config of the forum thread (6 bands, 18 classes, depth 4, 32 filters) has a
  pinned parameter count, equal to a count derived by hand from the architecture, and the
  pinned layer names.
* Every skip concatenation takes its encoder stage's last ReLU, before and after head
  replacement; the replaced model shares no layer with the pretrained one, keeps every
  weight (BatchNorm statistics included) and only its head is new.
* Band inflation: an N-band image made of copies of an RGB image gives the RGB model's output.
"""

from __future__ import annotations

import numpy as np
import pytest

from rstransfer.studies.unet.model import (
    HEAD_LAYERS,
    band_mapping,
    build_unet,
    inflate_first_conv,
    replace_head,
    unet_depth,
)

REFERENCE_PARAMS = 7_770_354  # build_unet((256, 256, 6), 18, depth=4, base_filters=32)


def expected_params(bands: int, classes: int, depth: int, base: int) -> int:
    """Parameters counted from the architecture: 3x3 convolutions without bias + BatchNorm
    (4 per channel), 2x2 transposed convolutions with bias, a 1x1 head with bias."""
    f = [base * 2**s for s in range(depth + 1)]

    def block(cin: int, cout: int) -> int:
        return 9 * cin * cout + 4 * cout + 9 * cout * cout + 4 * cout

    total, cin = 0, bands
    for s in range(depth):
        total += block(cin, f[s])
        cin = f[s]
    total += block(f[depth - 1], f[depth])
    for s in range(depth - 1, -1, -1):
        total += 4 * f[s + 1] * f[s] + f[s] + block(2 * f[s], f[s])
    return total + f[0] * classes + classes


def names(depth: int, dropout: bool) -> list[str]:
    conv = [c for i in (1, 2) for c in (f"conv{i}", f"bn{i}", f"relu{i}")]
    out = ["input"]
    for s in range(1, depth + 1):
        out += [f"enc{s}_{c}" for c in conv] + [f"enc{s}_pool"]
    out += [f"bridge_{c}" for c in conv] + (["bridge_dropout"] if dropout else [])
    for s in range(depth, 0, -1):
        out += [f"dec{s}_upconv", f"dec{s}_uprelu", f"dec{s}_concat"] + [f"dec{s}_{c}" for c in conv]
    return out + list(HEAD_LAYERS)


def inbound(model, layer_name: str) -> list[str]:
    """Names of the layers feeding ``layer_name`` in ``model``'s graph (tf_keras and Keras 3)."""
    tensors = model.get_layer(layer_name).input
    tensors = tensors if isinstance(tensors, list | tuple) else [tensors]
    return [t._keras_history[0].name for t in tensors]


def randomise(model, seed: int = 0) -> None:
    """Non-default weights everywhere (BatchNorm statistics too), so copies are checkable."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        ws = layer.get_weights()
        if ws:
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(w.dtype) for w in ws])


def test_reference_unet_pinned() -> None:
    model = build_unet((256, 256, 6), 18, depth=4, base_filters=32, dropout=0.5)
    assert model.count_params() == REFERENCE_PARAMS == expected_params(6, 18, 4, 32)
    assert [layer.name for layer in model.layers] == names(4, dropout=True)
    assert model.input_shape == (None, 256, 256, 6) and model.output_shape == (None, 256, 256, 18)
    assert model.optimizer is None  # uncompiled
    assert unet_depth(model) == 4


@pytest.mark.parametrize("bands,classes,depth,base", [(13, 5, 2, 4), (1, 2, 3, 8)])
def test_any_band_count(bands: int, classes: int, depth: int, base: int) -> None:
    model = build_unet((None, None, bands), classes, depth=depth, base_filters=base)
    assert model.count_params() == expected_params(bands, classes, depth, base)
    assert [layer.name for layer in model.layers] == names(depth, dropout=False)
    out = model.predict(np.zeros((1, 2**depth * 2, 2**depth * 3, bands), np.float32), verbose=0)
    assert out.shape == (1, 2**depth * 2, 2**depth * 3, classes)
    np.testing.assert_allclose(out.sum(-1), 1.0, atol=1e-5)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="divisible"):
        build_unet((100, 96, 6), 3, depth=4)
    with pytest.raises(ValueError, match="bands"):
        build_unet((64, 64), 3)


def test_skips_by_name_before_and_after_head_replacement() -> None:
    pretrained = build_unet((32, 32, 4), 6, depth=3, base_filters=4)
    randomise(pretrained)
    new = replace_head(pretrained, 3)
    for model in (pretrained, new):
        for s in (1, 2, 3):
            assert inbound(model, f"dec{s}_concat") == [f"enc{s}_relu2", f"dec{s}_uprelu"]
    assert [layer.name for layer in new.layers] == [layer.name for layer in pretrained.layers]
    assert not {id(layer) for layer in new.layers} & {id(layer) for layer in pretrained.layers}
    assert new.output_shape[-1] == 3 and new.get_layer("head_conv").get_weights()[0].shape == (1, 1, 4, 3)

    changed = []
    for layer in pretrained.layers:
        old, fresh = layer.get_weights(), new.get_layer(layer.name).get_weights()
        if [w.shape for w in old] != [w.shape for w in fresh] or not all(
            np.array_equal(a, b) for a, b in zip(old, fresh, strict=True)
        ):
            changed.append(layer.name)
    assert changed == ["head_conv"]  # only the head is new; every other weight (BN statistics too) is kept

    x = np.random.default_rng(1).normal(size=(2, 32, 32, 4)).astype(np.float32)
    from rstransfer.core.keras import keras

    trunks = [keras.Model(m.inputs, m.get_layer("dec1_relu2").output) for m in (pretrained, new)]
    feats = [trunk(x, training=False).numpy() for trunk in trunks]
    np.testing.assert_array_equal(feats[0], feats[1])


def test_replace_head_needs_the_feature_layer() -> None:
    with pytest.raises(ValueError, match="no layer 'decoder_out'"):
        replace_head(build_unet((16, 16, 3), 2, depth=2, base_filters=2), 4, features="decoder_out")


@pytest.mark.parametrize("bands", [3, 6, 13])
def test_band_inflation_copies_give_the_rgb_output(bands: int) -> None:
    rgb = build_unet((32, 32, 3), 4, depth=2, base_filters=4)
    randomise(rgb, seed=2)
    multi = inflate_first_conv(rgb, bands)
    assert multi.input_shape == (None, 32, 32, bands)
    assert [layer.name for layer in multi.layers] == [layer.name for layer in rgb.layers]
    image = np.random.default_rng(3).uniform(0, 1, (2, 32, 32, 3)).astype(np.float32)
    copies = image[..., [b % 3 for b in range(bands)]]
    from rstransfer.core.keras import keras

    first = [keras.Model(m.inputs, m.get_layer("enc1_conv1").output) for m in (rgb, multi)]
    np.testing.assert_allclose(first[1](copies).numpy(), first[0](image).numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(multi.predict(copies, verbose=0), rgb.predict(image, verbose=0), atol=1e-5)


def test_band_mapping_rescales_repeated_channels() -> None:
    a = band_mapping(13)
    assert a.shape == (3, 13)
    np.testing.assert_allclose(a.sum(axis=1), 1.0)  # each RGB channel is split over the bands that copy it
    np.testing.assert_allclose(a[0, [0, 3, 6, 9, 12]], 0.2)
    grey = band_mapping(1)
    np.testing.assert_array_equal(grey[:, 0], [1, 1, 1])
    with pytest.raises(ValueError, match="RGB channel"):
        band_mapping(4, mapping=[0, 1, 2, 3])


def test_save_load_round_trip(tmp_path) -> None:
    from rstransfer.core.fit import load_model

    model = build_unet((None, None, 5), 3, depth=2, base_filters=4)
    randomise(model, seed=4)
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    x = np.random.default_rng(5).normal(size=(1, 16, 24, 5)).astype(np.float32)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
