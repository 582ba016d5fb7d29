"""Distribution: the only module that may import horovod.

``init(mode)`` returns a ``Dist``. For ``none`` it changes nothing (rank 0 of 1), so a local
run, a SLURM job and a Horovod rank share one training code path. ``horovod`` is the
minimal Horovod diff (STYLE.md section 4): ``hvd.init()``, one GPU per local rank with memory
growth, ``DistributedOptimizer``, and the broadcast / metric-average / LR warm-up callbacks.
The learning-rate scaling by ``size`` and the per-rank batch live in ``train.py``.

Horovod's Keras API only averages gradients under the Keras 2 API (tf_keras with
``TF_USE_LEGACY_KERAS=1``): under Keras 3 ``hvd.DistributedOptimizer`` trains but silently
skips the allreduce (shared/reference/stack-probe.md). ``HorovodDist`` refuses to start there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rstransfer.core.errors import RSTransferError


class DistributionError(RSTransferError, RuntimeError):
    """This process cannot run the requested distribution (the CLI reports it as one line)."""


@dataclass
class Dist:
    mode: str = "none"
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    _hvd: Any = field(default=None, repr=False)

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def shard(self) -> tuple[int, int]:
        return (self.size, self.rank)

    def wrap_optimizer(self, optimizer: Any) -> Any:
        return optimizer

    def callbacks(self, warmup_epochs: int = 0, initial_lr: float = 0.0, steps_per_epoch: int = 1) -> list[Any]:
        return []

    def barrier(self) -> None:
        return None

    def any(self, flag: bool) -> bool:
        """True if ``flag`` is set on any rank (collective under Horovod)."""
        return bool(flag)


KERAS3_MESSAGE = (
    "distribution.mode horovod needs the Keras 2 API (tf_keras with TF_USE_LEGACY_KERAS=1); "
    "this process runs Keras 3, under which horovod.tensorflow.keras silently skips the gradient "
    "allreduce. Unset RSTRANSFER_KERAS=keras3 / set TF_USE_LEGACY_KERAS=1 and install tf_keras"
)


def _require_keras2() -> Any:
    """The Keras in use (tf_keras); DistributionError (a RuntimeError) when it is Keras 3."""
    from rstransfer.core import keras as _keras

    if _keras.IS_KERAS3:
        raise DistributionError(KERAS3_MESSAGE)
    return _keras.keras


def pin_gpu(tf: Any, local_rank: int) -> list[Any]:
    """One GPU per local rank, with memory growth; a no-op without GPUs. Returns the GPUs seen."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        gpu = gpus[local_rank % len(gpus)]
        tf.config.set_visible_devices(gpu, "GPU")
        tf.config.experimental.set_memory_growth(gpu, True)
    return gpus


@dataclass
class HorovodDist(Dist):
    """One Horovod rank (launched by ``rstransfer launch``: srun + gloo, or horovodrun)."""

    mode: str = "horovod"
    _tf: Any = field(default=None, repr=False)
    _hvd_tf: Any = field(default=None, repr=False)  # horovod.tensorflow: collectives on plain tensors

    def __post_init__(self) -> None:
        keras = _require_keras2()  # before horovod sees any Keras
        import tensorflow as tf

        import horovod.tensorflow as hvd_tf
        import horovod.tensorflow.keras as hvd
        import horovod.tensorflow.keras.callbacks as hcb

        # horovod picks its Keras as ``tensorflow.keras``; it must be ours (tf_keras), or the
        # optimizer wrapper does nothing.
        if hvd.keras.callbacks.Callback is not keras.callbacks.Callback:
            raise DistributionError(KERAS3_MESSAGE + " (tensorflow.keras is not tf_keras here)")
        # horovod's callbacks do ``from keras import backend as K``, which is Keras 3's backend;
        # MetricAverage / warm-up then fail. Point them at tf_keras (stack-probe.md).
        hcb.K = keras.backend

        hvd.init()
        pin_gpu(tf, hvd.local_rank())
        self.rank, self.size, self.local_rank = hvd.rank(), hvd.size(), hvd.local_rank()
        self._hvd, self._hvd_tf, self._tf = hvd, hvd_tf, tf

    def wrap_optimizer(self, optimizer: Any) -> Any:
        return self._hvd.DistributedOptimizer(optimizer)

    def callbacks(self, warmup_epochs: int = 0, initial_lr: float = 0.0, steps_per_epoch: int = 1) -> list[Any]:
        """Broadcast rank 0's weights (when training starts, i.e. after pretrained weights are
        loaded and layers frozen, and with the optimizer state after the first batch), average
        epoch metrics over ranks (ahead of any callback that reads them), then warm the learning
        rate up from ``initial_lr / size`` to ``initial_lr`` over ``warmup_epochs``."""
        hvd, hvd_tf = self._hvd, self._hvd_tf

        class BroadcastGlobalVariablesCallback(hvd.callbacks.BroadcastGlobalVariablesCallback):
            """Horovod's broadcast runs at the end of the first batch (the optimizer's slots only
            exist then), so that first step would average gradients taken at different weights
            if the ranks started apart. Broadcast the model's weights before it as well; the
            first-batch broadcast (model + optimizer) still follows."""

            def on_train_begin(self, logs: dict | None = None) -> None:
                hvd_tf.broadcast_variables(self.model.variables, root_rank=self.root_rank)

        out = [BroadcastGlobalVariablesCallback(0), hvd.callbacks.MetricAverageCallback()]
        if warmup_epochs > 0:
            out.append(
                hvd.callbacks.LearningRateWarmupCallback(
                    initial_lr=initial_lr, warmup_epochs=warmup_epochs, steps_per_epoch=steps_per_epoch
                )
            )
        return out

    def barrier(self) -> None:
        """Every rank blocks until all ranks reached this point (an allreduce of a scalar)."""
        self._hvd_tf.allreduce(self._tf.constant(0.0), op=self._hvd_tf.Sum, name="rstransfer_barrier")

    def any(self, flag: bool) -> bool:
        """True on every rank if ``flag`` is set on any rank (a collective: every rank must call it)."""
        hvd_tf = self._hvd_tf
        total = hvd_tf.allreduce(self._tf.constant(1.0 if flag else 0.0), op=hvd_tf.Sum, name="rstransfer_any")
        return float(total) > 0.0


DISTRIBUTIONS = {"none": Dist, "horovod": HorovodDist}


def start_rendezvous(hosts: list[tuple[str, int]], n_proc: int) -> tuple[Any, int, list[Any]]:
    """Launcher side of a gloo run without horovodrun (``rstransfer launch`` under srun).

    Starts horovod's HTTP rendezvous server in a thread of this process and gives it the
    host/slot plan (``get_host_assignments``, as ``horovod.runner.gloo_run.launch_gloo`` does)
    *before* any rank can connect. Returns ``(server, port, plan)``; ``server.stop()`` ends it.
    Only the launcher-side ``horovod.runner`` package is imported here (no TensorFlow).
    """
    from horovod.runner.common.util.hosts import HostInfo, get_host_assignments
    from horovod.runner.http.http_server import RendezvousServer

    plan = get_host_assignments([HostInfo(name, slots) for name, slots in hosts], n_proc, n_proc)
    server = RendezvousServer(verbose=0)
    port = server.start()
    server.init(plan)
    return server, port, plan


def init(mode: str = "none") -> Dist:
    try:
        cls = DISTRIBUTIONS[mode]
    except KeyError:
        raise KeyError(f"unknown distribution {mode!r}; valid: {sorted(DISTRIBUTIONS)}") from None
    return cls()
