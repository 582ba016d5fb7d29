"""Segmentation evaluate step: predict whole test tiles with overlapping sliding windows
(batched, softmax averaged where windows overlap), then OA, per-class accuracy and F1 with pixel
counts, the confusion matrix in pixels, and PNGs in the ISPRS colours."""

from __future__ import annotations

import csv
import io
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from rstransfer.core.errors import ConfigError, DataFormatError
from rstransfer.core.io import atomic_path, write_json, write_text
from rstransfer.core.report import pyplot, read_json, save_figure
from rstransfer.core.study import StepContext

from .board import MAP_FILE
from .data import COLORMAP, encode_labels, grid_origins, read_tile
from .patches import normalize
from .settings import MODEL_NAME, WEIGHTS_FILE, tile_source, tile_split


def predict_tile(model: Any, channels: np.ndarray, patch: int, overlap: float, batch_size: int) -> np.ndarray:
    """Class probabilities (H, W, K) for a whole tile: overlapping windows predicted in
    batches, softmax outputs averaged where windows overlap. The last batch is padded to
    ``batch_size`` so the prediction function is traced once."""
    h, w = channels.shape[:2]
    origins = grid_origins((h, w), patch, overlap, where="the tile")
    x = normalize(channels)
    n_classes = int(model.output_shape[-1])
    acc = np.zeros((h, w, n_classes), dtype=np.float32)
    count = np.zeros((h, w), dtype=np.float32)
    for start in range(0, len(origins), batch_size):
        chunk = origins[start : start + batch_size]
        batch = np.zeros((batch_size, patch, patch, x.shape[-1]), dtype=np.float32)
        for i, (r, c) in enumerate(chunk):
            batch[i] = x[r : r + patch, c : c + patch]
        probs = np.asarray(model.predict_on_batch(batch))
        for i, (r, c) in enumerate(chunk):
            acc[r : r + patch, c : c + patch] += probs[i]
            count[r : r + patch, c : c + patch] += 1.0
    return acc / count[..., None]


def load_fcn(weights: Path, input_shape: tuple[int, ...], n_classes: int) -> Any:
    from .model import build_resnet50_fcn

    weights = Path(weights)
    if not weights.is_file():
        raise DataFormatError(f"{weights}: weights file missing; run `rstransfer finetune --study segmentation` first")
    model = build_resnet50_fcn(tuple(input_shape), n_classes)
    try:
        model.load_weights(str(weights))
    except (ValueError, OSError, KeyError) as exc:
        raise DataFormatError(
            f"{weights}: does not fit a {MODEL_NAME} for input {tuple(input_shape)} and {n_classes} classes: "
            f"{' '.join(str(exc).split())[:300]}"
        ) from exc
    return model


def evaluate_step(ctx: StepContext) -> dict[str, Any]:
    """Predict one whole test tile and score it (OA, per-class accuracy and F1, confusion, PNGs)."""
    from rstransfer.core.fit import setup_runtime
    from rstransfer.core.metrics import (
        confusion_csv,
        confusion_matrix,
        f1_per_class,
        scores,
    )

    cfg, seg, out_dir = ctx.cfg, ctx.section, ctx.out
    experiment, tile = ctx.run["experiment"], int(ctx.run["tile"])
    weights = Path(ctx.inputs["run"]) / WEIGHTS_FILE
    info = read_json(Path(ctx.inputs["run"]) / "train.json", "rstransfer finetune --study segmentation")
    shape = tuple(info["input_shape"])
    class_names = tuple(info["class_names"])
    source = tile_source(cfg, ctx.inputs.get("prepared"))
    source.check_exists([tile], tile_split(cfg, tile))
    t = read_tile(source, tile)
    channels = t.channels()
    if channels.shape[-1] != shape[-1]:
        raise ConfigError(
            f"segmentation.dsm: the model in {weights} takes {shape[-1]} channels, tile {tile} gives "
            f"{channels.shape[-1]}"
        )
    setup_runtime(seg["seed"], cfg["deterministic"], ctx.threads)
    model = load_fcn(Path(weights), shape, len(class_names))
    ev = seg["evaluate"]
    t0 = time.perf_counter()
    probs = predict_tile(model, channels, shape[0], ev["overlap"], ev["batch_size"])
    seconds = time.perf_counter() - t0
    pred = probs.argmax(axis=-1).astype(np.uint8)
    cm = confusion_matrix(t.mask.ravel(), pred.ravel(), len(class_names))
    result = scores(cm)
    predicted = cm.sum(axis=0)
    f1 = f1_per_class(cm)
    metrics = {
        "experiment": experiment,
        "tile": int(tile),
        "tile_split": tile_split(cfg, tile),
        "tile_shape": list(t.shape),
        "class_names": list(class_names),
        **result,
        "f1": f1,
        "predicted_pixels": predicted.astype(int).tolist(),
        "confusion_matrix": cm.tolist(),
        "windows": int(len(grid_origins(t.shape, shape[0], ev["overlap"]))),
        "window_overlap": ev["overlap"],
        "predict_seconds": seconds,
        "pixels_per_second": t.mask.size / seconds if seconds else None,
        "weights": str(weights),
        "train": info,
    }
    names = list(class_names)
    write_text(out_dir / "confusion.csv", confusion_csv(names, cm))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["class", "accuracy", "f1", "pixels", "predicted_pixels"])
    for n, a, f, s, p in zip(names, result["per_class_accuracy"], f1, result["support"], predicted, strict=True):
        writer.writerow([n, "" if a is None else f"{a:.6f}", "" if f is None else f"{f:.6f}", s, int(p)])
    write_text(out_dir / "per_class.csv", buf.getvalue())
    save_label_map(out_dir / MAP_FILE, pred)
    save_png(out_dir / "prediction.png", encode_labels(pred))
    save_comparison(
        out_dir / "comparison.png", t.image, t.mask, pred, names,
        f"{metrics['experiment']} | area {tile} | OA {result['OA']:.3f}",
    )
    write_json(out_dir / "metrics.json", metrics)
    line = (f"evaluated {experiment} on area {tile}: OA {result['OA']:.4f} Kappa {result['Kappa']:.4f}, "
            f"{metrics['windows']} windows, {metrics['pixels_per_second']:.0f} px/s")
    return {**result, "line": line}


def save_label_map(path: Path, pred: np.ndarray) -> None:
    """The tile's label map (class id per pixel, uint8, H x W) as ``.npy``, written atomically:
    what the participant submits to the leaderboard task ``vaihingen``."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, np.asarray(pred, dtype=np.uint8), allow_pickle=False)


def save_png(path: Path, rgb: np.ndarray) -> None:
    import matplotlib.image

    with atomic_path(path) as tmp:
        matplotlib.image.imsave(tmp, rgb, format="png")


def save_comparison(
    path: Path, image: np.ndarray, mask: np.ndarray, pred: np.ndarray, names: list[str], title: str
) -> None:
    """IRRG | ground truth | prediction, side by side, in the ISPRS colours (downsampled)."""
    from matplotlib.patches import Patch

    plt = pyplot()

    step = max(1, int(math.ceil(max(mask.shape) / 600)))
    panels = [(image[::step, ::step], "IRRG"), (encode_labels(mask[::step, ::step]), "ground truth"),
              (encode_labels(pred[::step, ::step]), "prediction")]
    h, w = mask[::step, ::step].shape
    fig, axes = plt.subplots(1, 3, figsize=(3 * 3.2, 3.2 * h / w + 0.9))
    for ax, (img, label) in zip(axes, panels, strict=True):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(label, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])  # keep the frame: white (impervious) areas touch the border
    colours = np.asarray(COLORMAP) / 255.0
    handles = [Patch(facecolor=colours[i], edgecolor="0.5", label=n) for i, n in enumerate(names)]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    save_figure(fig, path)


# ---------------------------------------------------------------------------------------------
# report
