"""Per-layer learning-rate factors as policy data: the one implementation for every study.

A policy gives every layer a factor, as MATLAB's ``WeightLearnRateFactor`` does: the layer
learns at ``base learning rate x factor``. :class:`LRFactors` holds ``(name pattern, factor)``
rules (fnmatch over layer names, first match wins), never layer indices.

* **Factor 0 freezes** the layer: ``layer.trainable = False``. Its weights get no gradient and
  no optimizer update, so they stay bit-identical; a frozen ``BatchNormalization`` runs in
  inference mode and keeps its moving statistics (Keras' transfer-learning rule).
* **Every other factor is one group with its own optimizer** of the configured kind at
  ``learning_rate x factor`` (:func:`rstransfer.core.fit.make_optimizer`). The custom
  ``train_step`` of :class:`FactorModel` runs one forward and one backward pass and hands each
  group's gradients to that group's optimizer. Gradients are never rescaled: Adam, RMSprop and
  Adagrad divide the scale of the gradient away, so ``10 x g`` under Adam moves a weight as
  far as ``g`` does. A factor on the optimizer's step holds for every update rule.
* **Horovod**: each group optimizer is wrapped by ``dist.wrap_optimizer``. The wrapper's
  ``compute_gradients`` allreduces the gradients it is given, so every group's gradients are
  averaged exactly once per step; :class:`_Given` stands in for the tape and returns the
  gradients of the single backward pass (no second backward pass per group).
* **Learning-rate callbacks** (Horovod's warm-up, ReduceLROnPlateau) set ``model.optimizer``'s
  rate. ``model.optimizer`` is the factor-1 group's optimizer (an empty one when no layer has
  factor 1), and every step sets each other group's rate to that rate x its factor, so a
  schedule keeps the ratios.
* **Checkpoints** (``core.checkpoint``) save ``model`` and ``model.optimizer``; the group
  optimizers are attributes of the model, so their state (momentum, iterations) is saved and
  restored with it. Every optimizer is built on its variables at compile time, so the
  checkpoint's ``model.optimizer.build(...)`` finds it built.

``FactorModel`` shares its layers with the plain model it is made from: train the
``FactorModel``, save the plain model. It needs a TensorFlow backend (tf_keras, or Keras 3 on
TensorFlow); the model builders themselves stay backend-neutral.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

FROZEN = 0.0


@dataclass(frozen=True)
class LRFactors:
    """Learning-rate factor per layer: the first ``(fnmatch pattern, factor)`` rule that
    matches the layer's name, else ``default``."""

    rules: tuple[tuple[str, float], ...] = ()
    default: float = 1.0

    def __post_init__(self) -> None:
        for pattern, factor in self.rules:
            if factor < 0:
                raise ValueError(f"learning-rate factor of {pattern!r} is negative ({factor})")
        if self.default < 0:
            raise ValueError(f"default learning-rate factor is negative ({self.default})")

    def factor(self, layer_name: str) -> float:
        for pattern, factor in self.rules:
            if fnmatch.fnmatchcase(layer_name, pattern):
                return float(factor)
        return float(self.default)

    def describe(self) -> str:
        """``"head_*: 10, *: 0"``: the rules as one line (the default last, as ``*``)."""
        parts = [f"{pattern}: {factor:g}" for pattern, factor in self.rules]
        if not any(pattern == "*" for pattern, _ in self.rules):
            parts.append(f"*: {self.default:g}")
        return ", ".join(parts)


def weighted_layers(model: Any) -> list[Any]:
    """The layers that own weights, in the model's order."""
    return [layer for layer in model.layers if layer.weights]


def layer_factors(model: Any, factors: LRFactors) -> dict[str, float]:
    """Layer name -> factor, for every layer with weights."""
    return {layer.name: factors.factor(layer.name) for layer in weighted_layers(model)}


def apply_factors(model: Any, factors: LRFactors) -> dict[str, float]:
    """Freeze the factor-0 layers (``trainable = False``), unfreeze the others; return the
    factor per weighted layer. Compile (:func:`compile_with_factors`) afterwards."""
    table = layer_factors(model, factors)
    for layer in weighted_layers(model):
        layer.trainable = table[layer.name] != FROZEN
    return table


def factor_groups(model: Any, factors: LRFactors) -> list[tuple[float, list[Any]]]:
    """``[(factor, trainable variables), ...]`` over the non-zero factors, ascending."""
    groups: dict[float, list[Any]] = {}
    for layer in weighted_layers(model):
        factor = factors.factor(layer.name)
        if factor != FROZEN and layer.trainable:
            groups.setdefault(factor, []).extend(layer.trainable_weights)
    return sorted((f, vs) for f, vs in groups.items() if vs)


def group_table(model: Any, factors: LRFactors, base_lr: float) -> list[dict[str, Any]]:
    """One row per factor (0 included): layers, parameter count and effective learning rate."""
    from rstransfer.models import count_params

    rows: dict[float, dict[str, Any]] = {}
    for layer in weighted_layers(model):
        factor = factors.factor(layer.name)
        row = rows.setdefault(factor, {"factor": factor, "learning_rate": base_lr * factor, "layers": [], "params": 0})
        row["layers"].append(layer.name)
        row["params"] += count_params(layer.weights)
    return [rows[f] for f in sorted(rows)]


class _Given:
    """Stands in for the ``GradientTape`` in ``optimizer.compute_gradients(loss, vars, tape)``:
    returns the gradients already taken by the step's single backward pass."""

    def __init__(self, variables: list[Any], grads: list[Any]) -> None:
        self._by_id = {id(v): g for v, g in zip(variables, grads, strict=True)}

    def gradient(self, target: Any, sources: Any) -> list[Any]:
        return [self._by_id[id(v)] for v in sources]


def _variable(value: Any) -> Any:
    """The learning-rate variable behind an optimizer's ``learning_rate`` (None for a schedule)."""
    return value if hasattr(value, "assign") else None


_CLASS: Any = None


def _factor_model_class() -> Any:
    """``FactorModel`` (defined on first use: importing this module imports no Keras)."""
    global _CLASS
    if _CLASS is not None:
        return _CLASS
    import tensorflow as tf

    from rstransfer.core.keras import keras

    class FactorModel(keras.Model):
        """A functional model (sharing the plain model's layers) whose ``train_step`` gives
        every learning-rate-factor group its own optimizer (see the module docstring)."""

        def train_step(self, data: Any) -> Any:
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
            with tf.GradientTape() as tape:
                y_pred = self(x, training=True)
                loss = self.compute_loss(x, y, y_pred, sample_weight)
            groups = self._lr_plan.groups
            variables = [v for _, _, vs in groups for v in vs]
            grads = tape.gradient(loss, variables)
            given = _Given(variables, grads)
            base_lr = _variable(self.optimizer.learning_rate)
            for optimizer, factor, group in groups:
                if optimizer is not self.optimizer and base_lr is not None:
                    lr = _variable(optimizer.learning_rate)
                    if lr is not None:
                        lr.assign(base_lr * factor)
                if hasattr(optimizer, "compute_gradients"):  # tf_keras (and Horovod's wrapper: allreduce here)
                    pairs = optimizer.compute_gradients(loss, group, tape=given)
                else:  # Keras 3
                    pairs = list(zip(given.gradient(loss, group), group, strict=True))
                optimizer.apply_gradients(pairs)
            return self.compute_metrics(x, y, y_pred, sample_weight)

    _CLASS = FactorModel
    return FactorModel


class _Plan:
    """Groups of one FactorModel, kept out of Keras' attribute tracking (the variables are
    the layers' own; tracking them again would list them twice as model weights)."""

    def __init__(self, groups: list[tuple[Any, float, list[Any]]], table: dict[str, float]) -> None:
        self.groups = groups
        self.table = table


def compile_with_factors(
    model: Any,
    factors: LRFactors,
    fit_cfg: dict[str, Any],
    dist: Any,
    *,
    loss: Any = "sparse_categorical_crossentropy",
    metrics: list[Any] | None = None,
    weighted_metrics: list[Any] | None = None,
    exclude_from_weight_decay: tuple[str, ...] = ("bias",),
) -> Any:
    """Apply ``factors`` to ``model`` and return a compiled :class:`FactorModel` over its layers.

    ``fit_cfg`` gives the optimizer (``optimizer``, ``learning_rate``, ``momentum``,
    ``clipnorm``, optional ``weight_decay``); the rate is scaled by ``dist.size`` (Horovod
    convention, as ``core.fit.compile_model``). Raises ValueError when every factor is 0.
    """
    from rstransfer.core.fit import make_optimizer

    table = apply_factors(model, factors)
    groups = factor_groups(model, factors)
    if not groups:
        raise ValueError(f"learning-rate factors {factors.describe()!r} freeze every layer of {model.name}")

    def optimizer(factor: float) -> Any:
        opt = make_optimizer(fit_cfg, lr_scale=factor * dist.size)
        if fit_cfg.get("weight_decay"):
            opt.weight_decay = float(fit_cfg["weight_decay"])  # in the config Horovod's wrapper copies
        opt = dist.wrap_optimizer(opt)
        if fit_cfg.get("weight_decay") and exclude_from_weight_decay:
            opt.exclude_from_weight_decay(var_names=list(exclude_from_weight_decay))
        return opt

    planned = [(optimizer(factor), factor, variables) for factor, variables in groups]
    base = next((opt for opt, factor, _ in planned if factor == 1.0), None)
    if base is None:  # no factor-1 group: an empty optimizer carries the base rate for callbacks
        base = optimizer(1.0)
        base.build([])
    for opt, _, variables in planned:
        opt.build(variables)

    trainer = _factor_model_class()(inputs=model.inputs, outputs=model.outputs, name=model.name)
    trainer._lr_plan = _Plan(planned, table)
    trainer.lr_group_optimizers = [opt for opt, _, _ in planned]  # tracked: checkpoints carry their state
    trainer.compile(optimizer=base, loss=loss, metrics=metrics or [], weighted_metrics=weighted_metrics)
    return trainer
