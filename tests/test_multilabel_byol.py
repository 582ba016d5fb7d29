"""BYOL of the multilabel study: EMA, tau schedule, no gradient into the target, the loss falls
and the projections do not collapse (tiny DenseNet, 32 px, CPU)."""

from __future__ import annotations

import numpy as np
import pytest

from rstransfer.studies.multilabel.byol import tau_at

SIZE = 32
# tf_keras seeds its initialisers with random.randint(1, 1e9) once keras.utils.set_random_seed ran
pytestmark = pytest.mark.filterwarnings("ignore:non-integer arguments to randrange:DeprecationWarning")


def test_tau_schedule_endpoints_and_monotone() -> None:
    taus = [tau_at(k, 50, 0.99) for k in range(51)]
    assert taus[0] == pytest.approx(0.99) and taus[-1] == pytest.approx(1.0)
    assert all(a <= b + 1e-12 for a, b in zip(taus, taus[1:], strict=False))
    assert tau_at(25, 50, 0.9) == pytest.approx(0.95)


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    import tempfile

    from rstransfer.data.synthetic_scenes import write_synthetic_ucmerced
    from rstransfer.data.ucmerced import load_ucmerced

    with tempfile.TemporaryDirectory() as tmp:
        d, t = write_synthetic_ucmerced(tmp, per_class=1, size=SIZE)
        return load_ucmerced(d, t, SIZE).images[:16]


def _byol(tau_base: float, total_steps: int, seed: int = 0):
    from rstransfer.core.keras import keras
    from rstransfer.models.densenet import build_densenet_encoder
    from rstransfer.studies.multilabel.byol import build_byol

    keras.utils.set_random_seed(seed)
    model = build_byol(lambda name: build_densenet_encoder((SIZE, SIZE, 3), blocks=(1, 1), name=name), 32, 16,
                       tau_base, total_steps)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    return model


def _batch(images: np.ndarray, seed: int = 0):
    from rstransfer.studies.multilabel.pipeline import byol_stream

    ds, steps = byol_stream(images, 8, seed)
    return ds, steps


def test_tau_of_the_model_follows_its_step_counter(images: np.ndarray) -> None:
    model = _byol(0.9, total_steps=4)
    assert float(model.tau()) == pytest.approx(0.9)
    model.steps_done.assign(2.0)
    assert float(model.tau()) == pytest.approx(0.95)
    model.steps_done.assign(4.0)
    assert float(model.tau()) == pytest.approx(1.0)


def test_ema_update_is_exact_and_target_gets_no_gradient(images: np.ndarray) -> None:
    import tensorflow as tf

    model = _byol(0.9, total_steps=10)
    target_ids = {id(v) for v in model.target_weights()}
    assert not target_ids & {id(v) for v in model.trainable_weights}
    ds, _ = _batch(images)
    v1, v2 = next(iter(ds))
    with tf.GradientTape() as tape:
        loss = model.byol_loss(v1, v2)
    grads = tape.gradient(loss, model.target_encoder.trainable_variables + model.target_projector.trainable_variables
                          + [w for w in model.target_weights()])
    assert all(g is None for g in grads)

    before = [w.numpy().copy() for w in model.target_weights()]
    model.fit(ds, epochs=1, steps_per_epoch=1, verbose=0)
    online = [w.numpy() for w in model.online_weights()]
    after = [w.numpy() for w in model.target_weights()]
    changed = 0
    for t0, o1, t1 in zip(before, online, after, strict=True):
        np.testing.assert_allclose(t1, 0.9 * t0 + 0.1 * o1, rtol=1e-5, atol=1e-6)
        changed += not np.allclose(t0, t1)
    assert changed > 10 and float(model.steps_done) == 1.0


def test_target_moves_only_by_the_ema(images: np.ndarray) -> None:
    model = _byol(1.0, total_steps=10)  # tau = 1: the target must not move at all
    before = [w.numpy().copy() for w in model.target_weights()]
    online_before = [w.numpy().copy() for w in model.online_weights()]
    ds, _ = _batch(images)
    model.fit(ds, epochs=1, steps_per_epoch=2, verbose=0)
    for t0, w in zip(before, model.target_weights(), strict=True):
        np.testing.assert_array_equal(t0, w.numpy())
    assert any(not np.allclose(a, b.numpy()) for a, b in zip(online_before, model.online_weights(), strict=True))


def test_loss_falls_and_projections_do_not_collapse(images: np.ndarray) -> None:
    from rstransfer.models.densenet import preprocess

    model = _byol(0.99, total_steps=40, seed=1)
    ds, steps = _batch(images, seed=1)
    history = model.fit(ds, epochs=20, steps_per_epoch=steps, verbose=0).history["loss"]
    assert np.mean(history[-3:]) < 0.8 * np.mean(history[:3]), history
    z = model.projector(model.encoder(preprocess(images.astype(np.float32)), training=False), training=False).numpy()
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    assert z.std(axis=0).mean() > 0.05, z.std(axis=0)


def test_views_are_seeded_and_asymmetric(images: np.ndarray) -> None:
    ds1, steps = _batch(images, seed=4)
    ds2, _ = _batch(images, seed=4)
    (a1, a2), (b1, _) = next(iter(ds1)), next(iter(ds2))
    assert steps == 2 and a1.shape == (8, SIZE, SIZE, 3) and a1.dtype.name == "float32"
    np.testing.assert_array_equal(a1.numpy(), b1.numpy())
    assert not np.allclose(a1.numpy(), a2.numpy())
    ds3, _ = _batch(images, seed=5)
    assert not np.allclose(next(iter(ds3))[0].numpy(), a1.numpy())
