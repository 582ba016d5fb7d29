"""evaluate: test-pixel metrics and a whole-scene classification map for one trained model.

Prediction runs in batches through the same patch pipeline as training (no per-pixel
Python loop). Test pixels are scored only by ``test_scores``: here, and once more by the
pretrain step for the source model on the source scene's own test pixels (``SOURCE_FILE``),
after its training and model selection are over.
"""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Any

import numpy as np

from rstransfer.core.fit import load_model, setup_runtime
from rstransfer.core.io import atomic_path, write_json, write_text
from rstransfer.core.metrics import confusion_csv, confusion_matrix, scores
from rstransfer.core.report import read_json, save_figure
from rstransfer.core.study import StepContext
from rstransfer.data.prepare import Prepared, load_prepared
from rstransfer.data.splits import TEST

from .board import MAP_FILE
from .prepare import MODEL_FILE, PREPARED_FILE


def predict_pixels(model: Any, prepared: Prepared, rows: np.ndarray, cols: np.ndarray, batch_size: int) -> np.ndarray:
    from rstransfer.data.patches import patch_dataset

    ds = patch_dataset(prepared.cube, rows, cols, None, prepared.window, batch_size)
    probs = model.predict(ds, verbose=0)
    return probs.argmax(axis=-1).astype(np.int32)


SOURCE_FILE = "source_test.json"  # in the pretrain run folder: the source model on its own test pixels


def test_scores(model: Any, prepared: Prepared, batch_size: int) -> dict[str, Any]:
    """OA/AA/Kappa, per-class accuracy and confusion matrix on the test pixels of ``prepared``,
    with the split's leakage figures and buffer summary beside them."""
    rows, cols, y_true = prepared.pixels(TEST)
    y_pred = predict_pixels(model, prepared, rows, cols, batch_size)
    cm = confusion_matrix(y_true, y_pred, prepared.n_classes)
    return {
        "dataset": prepared.dataset,
        "class_names": list(prepared.class_names),
        **scores(cm),
        "confusion_matrix": cm.tolist(),
        "n_test": int(len(y_true)),
        "split": prepared.attrs["split"]["protocol"],
        "leakage": prepared.attrs["leakage"],
        "buffer": prepared.attrs.get("buffer", {}),
    }


def predict_scene(model: Any, prepared: Prepared, batch_size: int) -> np.ndarray:
    """Class id (1..C) for every pixel of the scene."""
    h, w = prepared.labels.shape
    rows, cols = np.divmod(np.arange(h * w, dtype=np.int64), w)
    return predict_pixels(model, prepared, rows, cols, batch_size).reshape(h, w) + 1


def save_scene_map(path: Path, scene_pred: np.ndarray) -> None:
    """The scene map (class id 1..C per pixel, int16, H x W) as ``.npy``, written atomically:
    what the participant submits to the leaderboard task ``hsi``."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, np.asarray(scene_pred, dtype=np.int16), allow_pickle=False)


def class_colors(n_classes: int) -> np.ndarray:
    """RGB in [0,1] for ids 0..C (0 = unlabelled, black)."""
    import matplotlib

    cmap = matplotlib.colormaps["tab20" if n_classes > 10 else "tab10"]
    return np.vstack([[0.0, 0.0, 0.0], [cmap(i % cmap.N)[:3] for i in range(n_classes)]])


def save_map_png(path: Path, predicted: np.ndarray, labels: np.ndarray, class_names: tuple[str, ...], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    colors = class_colors(len(class_names))
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.6))
    axes[0].imshow(colors[labels])
    axes[0].set_title("ground truth")
    axes[1].imshow(colors[predicted])
    axes[1].set_title("prediction (all pixels)")
    for ax in axes:
        ax.set_axis_off()
    handles = [Patch(color=colors[i + 1], label=name) for i, name in enumerate(class_names)]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 4), fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    save_figure(fig, path)


def write_tables(out_dir: Path, tested: dict[str, Any], prefix: str = "") -> None:
    """``confusion.csv`` and ``per_class.csv`` (names prefixed) of a ``test_scores`` result."""
    names, cm = tested["class_names"], np.asarray(tested["confusion_matrix"])
    write_text(out_dir / f"{prefix}confusion.csv", confusion_csv(names, cm))
    write_text(
        out_dir / f"{prefix}per_class.csv",
        "class,accuracy,support\n"
        + "".join(
            f"{n},{'' if a is None else f'{a:.6f}'},{s}\n"
            for n, a, s in zip(names, tested["per_class_accuracy"], tested["support"], strict=True)
        ),
    )


def evaluate_source(model: Any, prepared: Prepared, batch_size: int, out_dir: Path) -> dict[str, Any]:
    """The pre-trained model on the source scene's own held-out test pixels (pretrain step, rank 0)."""
    tested = test_scores(model, prepared, batch_size)
    write_tables(out_dir, tested, prefix="source_")
    write_json(out_dir / SOURCE_FILE, tested)
    return tested


def evaluate_step(ctx: StepContext) -> dict[str, Any]:
    """Test-pixel metrics, confusion matrix and scene map of one fine-tuned run."""
    run_dir = Path(ctx.inputs["run"])
    train_info = read_json(run_dir / "train.json", "rstransfer finetune --study hsi")
    setup_runtime(0, ctx.cfg["deterministic"], ctx.threads)
    prepared = load_prepared(Path(ctx.inputs["data"]) / PREPARED_FILE)
    model = load_model(run_dir / MODEL_FILE)
    batch = ctx.section["evaluate"]["batch_size"]
    out_dir = ctx.out

    tested = test_scores(model, prepared, batch)
    result = {k: tested[k] for k in ("OA", "AA", "Kappa", "per_class_accuracy", "support")}

    t0 = time.perf_counter()
    scene_pred = predict_scene(model, prepared, batch)
    map_seconds = time.perf_counter() - t0

    history = list(csv.DictReader(io.StringIO((run_dir / "history.csv").read_text())))
    metrics = {
        "dataset": prepared.dataset,
        "policy": train_info["policy"],
        "seed": train_info["seed"],
        "model": train_info["model"],
        **tested,
        "map_seconds": map_seconds,
        "map_pixels_per_second": scene_pred.size / map_seconds if map_seconds else None,
        "train": train_info,
        "history": history,
    }
    write_tables(out_dir, tested)
    save_scene_map(out_dir / MAP_FILE, scene_pred)
    save_map_png(
        out_dir / "map.png", scene_pred, prepared.labels, prepared.class_names,
        f"{prepared.dataset} | {train_info['policy']} seed {train_info['seed']} | OA {result['OA']:.3f}",
    )
    write_json(out_dir / "metrics.json", metrics)
    line = f"evaluated {metrics['policy']} seed {metrics['seed']}: OA {result['OA']:.4f} AA {result['AA']:.4f} Kappa {result['Kappa']:.4f}"
    return {**result, "line": line}
