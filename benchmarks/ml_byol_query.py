"""ML: the multi-label study's costs, as ratios measured in one run.

1. **BYOL step vs supervised step** on the same DenseNet backbone and batch: images per second of
   the BYOL ``train_step`` (two augmented views through the online encoder + projector +
   predictor and the target encoder + projector, symmetric loss, EMA update) over images per
   second of a plain supervised step (one view, sigmoid head, BCE). Both are fed by the study's
   own tf.data streams (``byol_stream``, ``labelled_stream``) and timed after warm-up steps.
2. **Query time vs one fine-tuning epoch**: the seconds an active-learning round spends querying
   the whole unlabelled pool (features + sigmoid outputs of every pool image, MGE scores, KMeans++
   over the m most uncertain: ``mge_clustering``) over the seconds of one fine-tuning epoch on the
   labelled set (the paper: pool 1050, 40..300 labelled, batch 10).

Full size: DenseNet121 at 256 px, batch 100 (BYOL) / 10 (fine-tuning), pool 1050, 180 labelled.
``--quick``: 64 px, the demo's 4-block DenseNet, small pool. Figures: ratio 1 (no target; about
1/3 is what two views plus a target network cost) and ratio 2 (no target; what a round costs
besides training).
"""

from __future__ import annotations

import sys
import time

import _common as C


def timed_steps(model, stream, warmup: int, steps: int) -> float:
    """Seconds for ``steps`` train steps after ``warmup`` untimed ones (one fit epoch)."""
    marks: dict[str, float] = {}
    from rstransfer.core.keras import keras

    class Timer(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            if batch == warmup - 1:
                marks["t0"] = time.perf_counter()
            if batch == warmup + steps - 1:
                marks["t1"] = time.perf_counter()

    model.fit(stream, epochs=1, steps_per_epoch=warmup + steps, callbacks=[Timer()], verbose=0)
    return marks["t1"] - marks["t0"]


def main(argv: list[str] | None = None) -> int:
    parser = C.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 6, quick 3)")
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args(argv)
    C.pin_threads(args.threads)
    import numpy as np

    C.setup_tf(args.threads, args.seed)
    from rstransfer.core import dist as dist_mod
    from rstransfer.core.fit import compile_model
    from rstransfer.core.keras import keras
    from rstransfer.models.densenet import DENSENET121_BLOCKS, build_densenet_encoder
    from rstransfer.studies.multilabel.active import Query, select
    from rstransfer.studies.multilabel.byol import build_byol
    from rstransfer.studies.multilabel.model import build_classifier, feature_model
    from rstransfer.studies.multilabel.pipeline import byol_stream, inference_stream, labelled_stream

    quick = args.quick
    size, blocks = (64, (2, 2, 2, 2)) if quick else (256, DENSENET121_BLOCKS)
    byol_batch, ft_batch = (16, 10) if quick else (100, 10)
    pool_n, labelled_n, b, m = (120, 40, 8, 24) if quick else (1050, 180, 20, 100)
    steps = args.steps or (3 if quick else 6)
    rng = np.random.default_rng(args.seed)
    pool = rng.integers(0, 256, (pool_n, size, size, 3), dtype=np.uint8)
    labels = (rng.random((pool_n, 17)) < 0.2).astype(np.float32)
    dist = dist_mod.init("none")

    def encoder(name: str):
        return build_densenet_encoder((size, size, 3), None, blocks, "avg", name)

    # 1. BYOL step vs supervised step, same backbone and batch
    byol = build_byol(encoder, 512 if quick else 4096, 64 if quick else 256, 0.99, 1000)
    compile_model(byol, {"optimizer": "adam", "learning_rate": 1e-3}, dist, loss=None, metrics=[])
    byol.optimizer.build(byol.trainable_variables)
    stream, _ = byol_stream(pool, byol_batch, args.seed)
    t_byol = timed_steps(byol, stream, args.warmup, steps)
    clf = build_classifier(encoder("supervised_encoder"), 17)
    compile_model(clf, {"optimizer": "adam", "learning_rate": 1e-3}, dist, loss="binary_crossentropy", metrics=[])
    stream, _ = labelled_stream(pool, labels, byol_batch, args.seed)
    t_sup = timed_steps(clf, stream, args.warmup, steps)
    byol_rate, sup_rate = steps * byol_batch / t_byol, steps * byol_batch / t_sup

    # 2. query the whole pool vs one fine-tuning epoch on the labelled set
    compile_model(clf, {"optimizer": "sgd", "learning_rate": 0.025}, dist, loss="binary_crossentropy", metrics=[])
    stream, ft_steps = labelled_stream(pool[:labelled_n], labels[:labelled_n], ft_batch, args.seed)
    clf.fit(stream, epochs=1, steps_per_epoch=ft_steps, verbose=0)  # trace
    t0 = time.perf_counter()
    clf.fit(stream, epochs=1, steps_per_epoch=ft_steps, verbose=0)
    t_epoch = time.perf_counter() - t0
    feats = feature_model(clf)
    unlabelled = pool[labelled_n:]
    feats.predict(inference_stream(unlabelled[:64], 64), verbose=0)  # trace
    t0 = time.perf_counter()
    h, p = feats.predict(inference_stream(unlabelled, 64), verbose=0)
    picked = select("mge_clustering", Query(np.asarray(p), np.asarray(h), 0.5, m, args.seed), b)
    t_query = time.perf_counter() - t0
    assert len(set(picked.tolist())) == b
    keras.backend.clear_session()

    rows = [
        ["BYOL step", f"{byol_rate:.1f} img/s", f"batch {byol_batch}, {size} px"],
        ["supervised step", f"{sup_rate:.1f} img/s", "same backbone and batch"],
        ["query whole pool", f"{t_query:.2f} s", f"{len(unlabelled)} images, mge_clustering b={b} m={m}"],
        ["one fine-tuning epoch", f"{t_epoch:.2f} s", f"{labelled_n} labelled, batch {ft_batch}"],
    ]
    print(C.table(["what", "measured", "settings"], rows))
    print(C.machine())
    print(f"RESULT ML1 ratio={byol_rate / sup_rate:.3g} (BYOL / supervised images per second; no target)")
    print(f"RESULT ML2 ratio={t_query / t_epoch:.3g} (query of the whole pool / one fine-tuning epoch; no target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
