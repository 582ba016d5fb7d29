"""One training process for tests/test_horovod.py: plain (``--dist none``) or a Horovod rank.

It goes through the training code itself (``core.fit.setup_runtime``, ``dist.init``,
``core.fit.compile_model``, ``hsi.train.fit_and_save``), so the product files (model.keras,
history.csv, train.json) come from rank 0 only, exactly as in a real run. For the test it also
dumps, per rank, the initial and final weights to ``--dump``/rank<R>.npz and a hash of each
layer's weights to ``--dump``/rank<R>.json: a folder only the test reads.

Model: HybridSN with dropout 0, built fresh (``--policy Original``) or by
``train.build_finetune_model`` from ``--pretrained`` (frozen layers). The training pixels are
trimmed to a multiple of ``--trim-to`` so that every batch is full and, with ``shuffle: false``,
the union of the ranks' batches is the 1-rank batch (the shard interleaves indices rank::size).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


def layer_hashes(model) -> dict[str, str]:
    out = {}
    for layer in model.layers:
        weights = layer.get_weights()
        if weights:
            h = hashlib.sha256()
            for w in weights:
                h.update(w.tobytes())
            out[layer.name] = h.hexdigest()
    return out


def weights_dict(model, tag: str) -> dict:
    return {f"{tag}/{layer.name}/{i}": w for layer in model.layers for i, w in enumerate(layer.get_weights())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--prepared", required=True)
    p.add_argument("--out", required=True, help="run folder (product files, rank 0 only)")
    p.add_argument("--dump", required=True, help="test-only folder for per-rank weight dumps")
    p.add_argument("--dist", default="horovod", choices=["none", "horovod"])
    p.add_argument("--policy", default="Original")
    p.add_argument("--pretrained")
    p.add_argument("--batch", type=int, required=True, help="batch size per rank")
    p.add_argument("--lr", type=float, required=True, help="base learning rate (scaled by ranks)")
    p.add_argument("--optimizer", default="sgd")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--trim-to", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--init-per-rank", action="store_true",
        help="seed the initial weights with seed + rank, so that only the broadcast makes them equal",
    )
    args = p.parse_args(argv)

    import numpy as np

    from types import SimpleNamespace

    from rstransfer.core import dist as dist_mod
    from rstransfer.core import fit as core_fit
    from rstransfer.core.checkpoint import checkpoint_dir
    from rstransfer.core.policies import get_policy
    from rstransfer.data.prepare import load_prepared
    from rstransfer.data.splits import TRAIN
    from rstransfer.studies.hsi import train
    from rstransfer.studies.hsi.model import build_hybridsn
    from rstransfer.studies.hsi.policies import POLICIES

    offset = int(os.environ.get("HOROVOD_RANK", "0")) if args.init_per_rank else 0
    core_fit.setup_runtime(args.seed + offset, deterministic=True, threads=1)
    dist = dist_mod.init(args.dist)

    prepared = load_prepared(args.prepared)
    split = prepared.split.copy()
    rows, cols = np.nonzero(split == TRAIN)
    extra = len(rows) % args.trim_to
    if extra:
        split[rows[-extra:], cols[-extra:]] = 0  # drop the last pixels (row-major order)
    prepared = dataclasses.replace(prepared, split=split)

    shape = train.input_shape(prepared)
    policy = get_policy(POLICIES, args.policy)
    if policy.from_scratch:
        model = build_hybridsn(shape, prepared.n_classes, dropout=0.0)
    else:
        pretrained = core_fit.load_model(args.pretrained)
        model, _ = train.build_finetune_model(policy, shape, prepared.n_classes, pretrained)
    fit_cfg = {
        "epochs": args.epochs,
        "batch_size": args.batch,
        "optimizer": args.optimizer,
        "learning_rate": args.lr,
        "patience": 10,
        "monitor": "val_loss",
        "shuffle": False,
        "warmup_epochs": 0,
    }
    core_fit.compile_model(model, fit_cfg, dist)
    init = weights_dict(model, "init")
    out = Path(args.out)
    if dist.is_root:
        out.mkdir(parents=True, exist_ok=True)
    # the step's context without run_step: products straight into --out (rank 0 writes)
    ctx = SimpleNamespace(out=out, checkpoint_dir=checkpoint_dir(out), input_digest=lambda: "worker")
    summary = train.fit_and_save(
        ctx, model, prepared, fit_cfg, args.seed, dist,
        {"step": "test", "dataset": prepared.dataset, "model": "hybridsn", "policy": policy.name},
    )

    dump = Path(args.dump)
    dump.mkdir(parents=True, exist_ok=True)
    np.savez(dump / f"rank{dist.rank}.npz", **init, **weights_dict(model, "final"))
    info = {
        "rank": dist.rank,
        "size": dist.size,
        "local_rank": dist.local_rank,
        "steps": summary["n_train"] // (args.batch * dist.size) * args.epochs,
        "n_train": summary["n_train"],
        "trainable_layers": sorted({w.name.split("/")[0] for w in model.trainable_weights}),
        "hashes": layer_hashes(model),
        "lr": float(model.optimizer.learning_rate.numpy()),
        # collectives: True everywhere when set on rank 1 only; False when set nowhere
        "any_rank1": dist.any(dist.rank == 1),
        "any_none": dist.any(False),
    }
    (dump / f"rank{dist.rank}.json").write_text(json.dumps(info, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
