"""Per-layer learning-rate factors (rstransfer.core.lr_factors), as the U-Net policies use them.

* One SGD step: the factor-0 layer (a convolution and a BatchNorm) is bit-identical, its
  moving statistics included (inference mode); the factor-1 and factor-10 layers move by
  exactly -lr x g and -10 lr x g for the gradient g of that batch.
* The same layer on the same gradient moves 10x as far at factor 10 as at factor 1, under SGD
  and under Adam (whose update ignores the gradient's scale: scaling gradients would move it
  equally far).
* A learning-rate change on ``model.optimizer`` (warm-up, ReduceLROnPlateau) reaches every group.
* ``core.checkpoint``'s save/restore carries every group optimizer's state.
* Horovod (``horovodrun -np 2 --gloo``, this file as the worker): each group optimizer is a
  ``DistributedOptimizer`` whose gradients are allreduced once per step; 2 ranks with batch B
  and learning rate L end where 1 process with batch 2B and rate 2L ends; frozen layers stay
  bit-identical on both ranks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rstransfer.core.dist import Dist
from rstransfer.core.lr_factors import LRFactors, compile_with_factors, group_table

LR = 0.1
FACTORS = LRFactors((("a_*", 0.0), ("b_*", 1.0), ("c_*", 10.0)))
SGD = {"optimizer": "sgd", "learning_rate": LR, "momentum": 0.0}


def tiny_model(seed: int = 0):
    from rstransfer.core.keras import keras

    keras.utils.set_random_seed(seed)
    inp = keras.Input((8, 8, 3), name="input")
    x = keras.layers.Conv2D(4, 3, padding="same", name="a_conv")(inp)
    x = keras.layers.BatchNormalization(name="a_bn")(x)
    x = keras.layers.Activation("relu", name="a_relu")(x)
    x = keras.layers.Conv2D(4, 3, padding="same", name="b_conv")(x)
    x = keras.layers.Conv2D(3, 1, name="c_conv")(x)
    return keras.Model(inp, keras.layers.Activation("softmax", name="c_softmax")(x), name="tiny")


def batch(seed: int = 0, n: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 8, 8, 3)).astype(np.float32), rng.integers(0, 3, (n, 8, 8))


def weights(model) -> dict[str, list[np.ndarray]]:
    return {layer.name: [w.copy() for w in layer.get_weights()] for layer in model.layers if layer.weights}


def reference_gradients(model, x: np.ndarray, y: np.ndarray) -> dict[str, list[np.ndarray]]:
    """Gradients of the mean loss at the current weights (frozen layers as in training)."""
    import tensorflow as tf

    from rstransfer.core.keras import keras

    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    with tf.GradientTape() as tape:
        loss = loss_fn(y, model(x, training=True))
    grads = tape.gradient(loss, model.trainable_weights)
    out: dict[str, list[np.ndarray]] = {}
    by_id = {id(v): g.numpy() for v, g in zip(model.trainable_weights, grads, strict=True)}
    for layer in model.layers:
        if layer.trainable_weights:
            out[layer.name] = [by_id[id(v)] for v in layer.trainable_weights]
    return out


def test_one_sgd_step_per_factor_group() -> None:
    model = tiny_model()
    x, y = batch()
    trainer = compile_with_factors(model, FACTORS, SGD, Dist())
    before = weights(model)
    grads = reference_gradients(model, x, y)  # after compile: a_* is frozen
    assert set(grads) == {"b_conv", "c_conv"}
    trainer.train_on_batch(x, y)
    after = weights(model)
    for w0, w1 in zip(before["a_conv"] + before["a_bn"], after["a_conv"] + after["a_bn"], strict=True):
        assert np.array_equal(w0, w1)  # frozen: bit-identical, BN moving statistics included
    for name, factor in (("b_conv", 1.0), ("c_conv", 10.0)):
        for w0, w1, g in zip(before[name], after[name], grads[name], strict=True):
            assert np.abs(g).max() > 1e-4
            np.testing.assert_allclose(w1 - w0, -LR * factor * g, rtol=1e-4, atol=1e-7)
    rows = {r["factor"]: r for r in group_table(model, FACTORS, LR)}
    assert rows[0.0]["layers"] == ["a_conv", "a_bn"] and rows[10.0]["learning_rate"] == pytest.approx(1.0)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_factor_ten_moves_ten_times_factor_one(optimizer: str) -> None:
    x, y = batch(1)
    moved = {}
    for factor in (1.0, 10.0):
        model = tiny_model(seed=3)
        trainer = compile_with_factors(
            model, LRFactors((("c_*", factor),), default=0.0),
            {"optimizer": optimizer, "learning_rate": {"sgd": 0.5, "adam": 0.01}[optimizer], "momentum": 0.0}, Dist(),
        )
        w0 = model.get_layer("c_conv").get_weights()[0]
        trainer.train_on_batch(x, y)
        moved[factor] = model.get_layer("c_conv").get_weights()[0] - w0
    assert np.abs(moved[1.0]).max() > 1e-3
    # float32 weights near 1: a difference of two weights is exact to ~1e-7
    np.testing.assert_allclose(moved[10.0], 10 * moved[1.0], rtol=1e-3, atol=2e-6)


def test_all_frozen_is_an_error() -> None:
    with pytest.raises(ValueError, match="freeze every layer"):
        compile_with_factors(tiny_model(), LRFactors(default=0.0), SGD, Dist())


def test_learning_rate_change_reaches_every_group() -> None:
    model = tiny_model()
    trainer = compile_with_factors(model, FACTORS, SGD, Dist())
    trainer.optimizer.learning_rate = 0.02  # what a warm-up / ReduceLROnPlateau callback does
    trainer.train_on_batch(*batch())
    rates = sorted(float(opt.learning_rate.numpy()) for opt in trainer.lr_group_optimizers)
    assert rates == pytest.approx([0.02, 0.2])


def test_checkpoint_carries_every_group_optimizer(tmp_path: Path) -> None:
    from rstransfer.core.checkpoint import load_checkpoint, save_checkpoint

    class Recorder:  # the recorder state core.checkpoint saves alongside
        best_weights = None
        rows: list = []
        best, best_epoch, resumed_from = 0.0, 0, 0

        def state(self):
            return {"rows": [], "best": 0.0, "best_epoch": 0}

        def load_state(self, state, best):
            self.resumed_from = 1

    fit_cfg = {"optimizer": "sgd", "learning_rate": LR, "momentum": 0.9}
    trainer = compile_with_factors(tiny_model(), FACTORS, fit_cfg, Dist())
    for seed in (0, 1):
        trainer.train_on_batch(*batch(seed))
    save_checkpoint(tmp_path, trainer, 1, Recorder(), "fp")
    fresh = compile_with_factors(tiny_model(seed=9), FACTORS, fit_cfg, Dist())
    assert load_checkpoint(tmp_path, fresh, Recorder(), "fp") == 1
    for saved, restored in zip(trainer.lr_group_optimizers, fresh.lr_group_optimizers, strict=True):
        assert int(restored.iterations.numpy()) == 2
        for a, b in zip(saved.variables(), restored.variables(), strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    restored = fresh.get_layer("b_conv").get_weights()[0]
    np.testing.assert_array_equal(restored, trainer.get_layer("b_conv").get_weights()[0])


# ---------------------------------------------------------------------------------------------
# Horovod: this file is also the worker of ``horovodrun -np 2``

B, STEPS = 4, 3


def worker(out: Path, mode: str) -> None:
    """Train the tiny model with FACTORS for STEPS steps; dump weights and allreduce counts."""
    from rstransfer.core import dist as dist_mod

    dist = dist_mod.init(mode)
    model = tiny_model(seed=5)
    x, y = batch(7, n=2 * B)
    if mode == "horovod":  # batch B per rank, rates x size (compile_with_factors)
        x, y = x[dist.rank :: dist.size], y[dist.rank :: dist.size]
        lr = LR
    else:  # one process: the union of both ranks' batches, twice the rate
        lr = 2 * LR
    trainer = compile_with_factors(model, FACTORS, {**SGD, "learning_rate": lr}, dist)
    counts = {}
    for opt in trainer.lr_group_optimizers:
        if hasattr(opt, "_allreduce_grads"):
            original, key = opt._allreduce_grads, f"group_lr{float(opt.learning_rate.numpy()):g}"
            counts[key] = 0

            def counted(grads, variables=None, _f=original, _k=key):
                counts[_k] += 1
                return _f(grads, variables)

            opt._allreduce_grads = counted
    for _ in range(STEPS):
        trainer.train_on_batch(x, y)
    dump = {f"{n}/{i}": w for n, ws in weights(model).items() for i, w in enumerate(ws)}
    np.savez(out / f"{mode}{dist.rank}.npz", **dump)
    (out / f"{mode}{dist.rank}.json").write_text(json.dumps({"size": dist.size, "allreduce_traces": counts}))


@pytest.mark.slow
def test_horovod_two_ranks_average_each_group_once(tmp_path: Path) -> None:
    horovodrun = Path(sys.executable).parent / "horovodrun"
    if not horovodrun.exists():
        pytest.skip("horovodrun not installed")
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "OMP_NUM_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1",
           "TF_NUM_INTEROP_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    me = str(Path(__file__).resolve())
    proc = subprocess.run([str(horovodrun), "-np", "2", "--gloo", sys.executable, me, str(tmp_path), "horovod"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    subprocess.run([sys.executable, me, str(tmp_path), "none"], env=env, check=True, timeout=300)
    ranks = [np.load(tmp_path / f"horovod{r}.npz") for r in (0, 1)]
    single = np.load(tmp_path / "none0.npz")
    initial = weights(tiny_model(seed=5))
    for key in single.files:
        np.testing.assert_array_equal(ranks[0][key], ranks[1][key])
        np.testing.assert_allclose(ranks[0][key], single[key], atol=1e-6)
        name, i = key.split("/")
        if name.startswith("a_"):
            np.testing.assert_array_equal(ranks[0][key], initial[name][int(i)])
        else:
            assert np.abs(ranks[0][key] - initial[name][int(i)]).max() > 1e-4
    info = json.loads((tmp_path / "horovod0.json").read_text())
    assert info["size"] == 2
    # one traced train step: each of the two groups (lr 0.2 and 2.0 after x size) allreduced exactly once
    assert info["allreduce_traces"] == {"group_lr0.2": 1, "group_lr2": 1}


if __name__ == "__main__":
    worker(Path(sys.argv[1]), sys.argv[2])
