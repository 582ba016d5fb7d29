"""Distribution: the only module that may import horovod.

``init(mode)`` returns a ``Dist``. For ``none`` it changes nothing (rank 0 of 1), so a local
run, a SLURM job and a Horovod rank share one training code path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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


DISTRIBUTIONS = {"none": Dist}


def init(mode: str = "none") -> Dist:
    try:
        return DISTRIBUTIONS[mode]()
    except KeyError:
        raise KeyError(f"unknown distribution {mode!r}; valid: {sorted(DISTRIBUTIONS)}") from None
