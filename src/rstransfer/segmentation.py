"""Segmentation branch: train, evaluate and report the ResNet50-FCN on ISPRS Vaihingen tiles.

Steps (one CLI subcommand each, called by ``workflow/rules/segmentation.smk``, ``jobs/`` and
the tests alike):

* ``train_fcn``: one experiment (pretrained weights, augmentation, fine-tuning policy) on the
  patch files of ``prepare-vaihingen``; model selection on validation patches; rank 0 writes
  ``weights.h5``, ``history.csv`` and ``train.json``. The weights are saved alone (Keras HDF5,
  layer names kept) rather than as ``model.keras``: tf_keras reads a 95 MB ``.keras`` archive's
  weights through the zip stream and needs about 3 minutes for it (measured: 173 s), while
  rebuilding the FCN and loading ``weights.h5`` takes about 3 s.
* ``evaluate_fcn``: predict one whole tile with overlapping sliding windows (batched, softmax
  averaged where windows overlap), then OA, per-class accuracy with pixel counts and the
  confusion matrix in pixels, and PNGs in the ISPRS colours.
* ``build_report``: experiment x tile OA, per-class tables per tile and training time as CSV +
  Markdown, and one self-contained ``segmentation.html``.

The helpers at the top (``final_outputs``, ``tile_inputs``, ``pretrained_inputs``...) serve
the Snakefile; they import neither TensorFlow nor Keras.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from .data import vaihingen as vh
from .errors import ConfigError, DataFormatError
from .io import atomic_path, write_json, write_text
from .paths import Layout

MODEL_NAME = "resnet50_fcn"
WEIGHTS_FILE = "weights.h5"
RUN_PREFIX = "run:"
EXPERIMENT_DEFAULTS: dict[str, Any] = {"pretrained": "none", "augment": True, "policy": "fcn_all"}


# ---------------------------------------------------------------------------------------------
# config checks and Snakefile helpers (no TensorFlow)


def check_segmentation(cfg: dict[str, Any]) -> None:
    """Cross-key checks of the ``segmentation`` section that the schema cannot express."""
    seg = cfg["segmentation"]
    vh.check_tiles(cfg)
    experiments = seg["experiments"]
    for name, exp in experiments.items():
        spec = str(exp["pretrained"])
        if spec.startswith(RUN_PREFIX):
            other = spec[len(RUN_PREFIX) :]
            if other not in experiments or other == name:
                raise ConfigError(
                    f"segmentation.experiments.{name}.pretrained: {spec!r} must name another experiment "
                    f"(declared: {sorted(experiments)})"
                )
    # run: references must not form a cycle
    for name in experiments:
        seen, cur = {name}, name
        while str(experiments[cur]["pretrained"]).startswith(RUN_PREFIX):
            cur = str(experiments[cur]["pretrained"])[len(RUN_PREFIX) :]
            if cur in seen:
                raise ConfigError(f"segmentation.experiments.{name}.pretrained: run: references form a cycle")
            seen.add(cur)


def final_outputs(cfg: dict[str, Any]) -> list[str]:
    """What ``rule all`` needs from this branch: the report page, when enabled."""
    if not cfg["segmentation"]["enabled"]:
        return []
    check_segmentation(cfg)
    return [Layout.from_config(cfg).seg_report_dir(file="segmentation.html")]


def all_tiles(cfg: dict[str, Any]) -> list[int]:
    return sorted({n for split in cfg["segmentation"]["tiles"].values() for n in split})


def split_inputs(cfg: dict[str, Any], *splits: str) -> dict[str, list[str]]:
    """Tile files of the given splits by kind (image, label[, dsm]), for a rule's ``input:``."""
    source = vh.TileSource.from_config(cfg)
    out: dict[str, list[str]] = {}
    for split in splits:
        for n in cfg["segmentation"]["tiles"][split]:
            for kind, path in source.paths(int(n)).items():
                out.setdefault(kind, []).append(str(path))
    return out


def tile_inputs(cfg: dict[str, Any], tile: int | str) -> dict[str, str]:
    """The files of one tile by kind, for a rule's ``input:``."""
    return {kind: str(path) for kind, path in vh.TileSource.from_config(cfg).paths(int(tile)).items()}


def synthetic_outputs(cfg: dict[str, Any]) -> dict[str, list[str]]:
    """Every file ``make-vaihingen-demo`` writes (all configured tiles, with DSM)."""
    root = Path(Layout.from_config(cfg).seg_synthetic_dir())
    source = vh.TileSource(root / vh.SUBDIRS["image"], root / vh.SUBDIRS["label"], root / vh.SUBDIRS["dsm"])
    out: dict[str, list[str]] = {}
    for n in all_tiles(cfg):
        for kind, path in source.paths(n).items():
            out.setdefault(kind, []).append(str(path))
    return out


def experiment_settings(cfg: dict[str, Any], name: str | None) -> dict[str, Any]:
    experiments = cfg["segmentation"]["experiments"]
    if name is None:
        return dict(EXPERIMENT_DEFAULTS)
    if name not in experiments:
        raise ConfigError(f"--experiment: unknown experiment {name!r} (segmentation.experiments: {sorted(experiments)})")
    return {**EXPERIMENT_DEFAULTS, **experiments[name]}


def derived_name(transfer: bool | None, augment: bool | None) -> str | None:
    """The tutorial's run names from its two knobs: scratch_aug, imagenet_aug, *_noaug."""
    if transfer is None or augment is None:
        return None
    return f"{'imagenet' if transfer else 'scratch'}_{'aug' if augment else 'noaug'}"


def resolve_pretrained(cfg: dict[str, Any], spec: str) -> str | None:
    """``none`` -> None; ``run:<experiment>`` -> that run's weights.h5; else unchanged
    (``imagenet`` or a path, resolved by ``models.fcn.resolve_weights``)."""
    spec = str(spec)
    if spec.lower() == "none":
        return None
    if spec.lower() == "imagenet":
        return "imagenet"
    if spec.startswith(RUN_PREFIX):
        return Layout.from_config(cfg).seg_train_dir(spec[len(RUN_PREFIX) :], file=WEIGHTS_FILE)
    return spec


def pretrained_inputs(cfg: dict[str, Any], experiment: str) -> list[str]:
    """A weights file that is a workflow input (run:/path); [] for none and imagenet (whose
    absence the CLI reports with where to put the file)."""
    resolved = resolve_pretrained(cfg, experiment_settings(cfg, experiment)["pretrained"])
    return [] if resolved in (None, "imagenet") else [resolved]


def evaluated_runs(cfg: dict[str, Any]) -> list[str]:
    layout = Layout.from_config(cfg)
    seg = cfg["segmentation"]
    return [layout.seg_evaluate_dir(e, t) for e in seg["experiments"] for t in seg["tiles"]["test"]]


# ---------------------------------------------------------------------------------------------
# demo tiles and prepare


def make_demo(cfg: dict[str, Any], out: Path | None = None) -> list[Path]:
    syn = cfg["segmentation"]["synthetic"]
    root = out or Path(Layout.from_config(cfg).seg_synthetic_dir())
    return vh.write_synthetic_tiles(root, all_tiles(cfg), syn["height"], syn["width"], syn["seed"])


def prepare(cfg: dict[str, Any], train_out: Path, val_out: Path) -> dict[str, Any]:
    check_segmentation(cfg)
    return vh.prepare_vaihingen(cfg, {"train": train_out, "val": val_out})


# ---------------------------------------------------------------------------------------------
# training


def _load_splits(data_dir: Path, dist: Any) -> tuple[vh.PatchSet, vh.PatchSet]:
    """This rank's shard of the train and val patches (sharded before any shuffling)."""
    train = vh.load_patches(data_dir / vh.SPLIT_FILES["train"], dist.shard())
    val = vh.load_patches(data_dir / vh.SPLIT_FILES["val"], dist.shard())
    if len(train) == 0 or len(val) == 0:
        raise DataFormatError(f"{data_dir}: no training or validation patches")
    if train.input_shape != val.input_shape:
        raise DataFormatError(f"{data_dir}: train patches {train.input_shape} but val patches {val.input_shape}")
    return train, val


def _steps(n: int, batch_size: int) -> int:
    return max(1, math.ceil(n / batch_size))


def train_fcn(
    cfg: dict[str, Any],
    data_dir: Path,
    out_dir: Path,
    experiment: str | None = None,
    *,
    name: str | None = None,
    pretrained: str | None = None,
    augment: bool | None = None,
    policy: str | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Train one experiment; keyword arguments override the experiment's settings.

    ``experiment`` is a key of ``segmentation.experiments`` (None: the defaults, pretrained
    none + augmentation + fcn_all); ``name`` labels the run (default: the experiment, else
    the output folder's name).

    The fit loop is ``train.fit_and_save``'s: ``train.make_callbacks`` (Horovod callbacks,
    stop-on-signal, recorder with model selection + early stopping on val, per-epoch
    checkpoint, so a SLURM time limit resumes), plus ReduceLROnPlateau before the checkpoint.
    Its per-epoch reseed callback is dropped: it retraces the train function every epoch
    (about 20 s for ResNet50 on a CPU), and the FCN has no dropout to reseed; data order and
    augmentation depend on (seed, epoch) through ``patch_dataset`` instead.
    """
    from . import checkpoint
    from . import dist as dist_mod
    from ._keras import keras
    from .config import config_digest
    from .models import count_params, get_model
    from .policies import apply_policy, get_policy
    from .runinfo import gpu_hours, run_metadata
    from .train import compile_model, history_csv, make_callbacks, setup_runtime

    check_segmentation(cfg)
    seg = cfg["segmentation"]
    settings = experiment_settings(cfg, experiment)
    overrides = {k: v for k, v in {"pretrained": pretrained, "augment": augment, "policy": policy}.items() if v is not None}
    settings.update(overrides)
    pol = get_policy(settings["policy"])
    if pol.model != MODEL_NAME:
        raise ConfigError(f"policy {pol.name!r} is for model {pol.model}, not {MODEL_NAME}")
    weights_spec = resolve_pretrained(cfg, settings["pretrained"])
    weights_file = None if weights_spec is None else _weights_file(weights_spec)  # fail before any data is read
    fit_cfg = seg["train"]
    seed = seg["seed"]
    out_dir = Path(out_dir)
    setup_runtime(seed, cfg["train"]["deterministic"], threads)
    dist = dist_mod.init(cfg["distribution"]["mode"])
    train, val = _load_splits(Path(data_dir), dist)
    shape = train.input_shape
    if weights_file is not None and shape[-1] != 3:
        raise ConfigError(
            f"segmentation.experiments.{experiment}.pretrained: pretrained ResNet50 weights have 3 input "
            f"channels, the patches have {shape[-1]} (segmentation.dsm: true); use pretrained: none"
        )
    model = get_model(seg["model"])(shape, len(train.class_names), weights_file)
    apply_policy(model, pol)
    compile_model(model, fit_cfg, dist)

    # Horovod: batch_size per rank; every rank runs the same number of steps
    per_rank = fit_cfg["batch_size"]
    steps = _steps(len(train), per_rank)
    val_steps = _steps(len(val), per_rank)
    ckpt = checkpoint.checkpoint_dir(out_dir)
    fingerprint = config_digest(
        {"fit": fit_cfg, "seed": seed, "settings": settings, "shape": shape, "n": len(train), "size": dist.size}
    )
    callbacks, parts = make_callbacks(fit_cfg, dist, steps, seed, ckpt, fingerprint)
    callbacks.remove(parts["reseed"])
    callbacks.insert(
        callbacks.index(parts["checkpointer"]),
        keras.callbacks.ReduceLROnPlateau(
            monitor=fit_cfg["monitor"],
            factor=fit_cfg["reduce_lr_factor"],
            patience=fit_cfg["reduce_lr_patience"],
            min_lr=fit_cfg["min_lr"],
            verbose=1 if dist.is_root else 0,
        ),
    )
    recorder = parts["recorder"]

    def make_data(first_epoch: int) -> dict[str, Any]:
        return {
            "train": vh.patch_dataset(
                train, per_rank, augment=settings["augment"], shuffle=fit_cfg["shuffle"], seed=seed,
                steps_per_epoch=steps, first_epoch=first_epoch,
            ),
            "val": vh.patch_dataset(val, per_rank, repeat=dist.size > 1),
            "steps": steps,
            "val_steps": val_steps,
        }

    wall = checkpoint.resumable_fit(model, callbacks, parts, ckpt, fingerprint, fit_cfg, dist, make_data)
    epoch_seconds = [r["seconds"] for r in recorder.rows]
    meta = run_metadata(dist.size)
    summary = {
        "step": "train_fcn",
        "experiment": name or experiment or out_dir.name,
        "model": seg["model"],
        "pretrained": settings["pretrained"],
        "pretrained_file": None if weights_file is None else str(weights_file),
        "augment": bool(settings["augment"]),
        "policy": pol.name,
        "overrides": overrides,
        "input_shape": list(shape),
        "class_names": list(train.class_names),
        "seed": seed,
        **checkpoint.fit_record(recorder, wall, fit_cfg),
        # patches seen per second over all ranks (epoch time includes validation)
        "samples_per_second": steps * per_rank * dist.size * len(epoch_seconds) / sum(epoch_seconds)
        if epoch_seconds
        else 0.0,
        "trainable_params": count_params(model.trainable_weights),
        "total_params": count_params(model.weights),
        "n_train": len(train) * dist.size,
        "n_val": len(val) * dist.size,
        "batch_size": per_rank,
        "world_size": dist.size,
        "gpu_hours": gpu_hours(meta, wall),
        "run": meta,
    }
    if dist.is_root:
        out_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(out_dir / WEIGHTS_FILE) as tmp:
            model.save_weights(str(tmp), save_format="h5")
        write_text(out_dir / "history.csv", history_csv(recorder.rows))
        write_json(out_dir / "train.json", summary)  # last: its presence means the step finished
        checkpoint.remove_checkpoint(ckpt)
    dist.barrier()
    return summary


def _weights_file(spec: str) -> Path:
    from .models.fcn import resolve_weights

    path = resolve_weights(spec)
    assert path is not None
    return path


# ---------------------------------------------------------------------------------------------
# whole-tile prediction and evaluation


def predict_tile(model: Any, channels: np.ndarray, patch: int, overlap: float, batch_size: int) -> np.ndarray:
    """Class probabilities (H, W, K) for a whole tile: overlapping windows predicted in
    batches, softmax outputs averaged where windows overlap. The last batch is padded to
    ``batch_size`` so the prediction function is traced once."""
    h, w = channels.shape[:2]
    origins = vh.grid_origins((h, w), patch, overlap, where="the tile")
    x = vh.normalize(channels)
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
    from .models import get_model

    weights = Path(weights)
    if not weights.is_file():
        raise DataFormatError(f"{weights}: weights file missing; run `rstransfer train-fcn` first")
    model = get_model(MODEL_NAME)(tuple(input_shape), n_classes)
    try:
        model.load_weights(str(weights))
    except (ValueError, OSError, KeyError) as exc:
        raise DataFormatError(
            f"{weights}: does not fit a {MODEL_NAME} for input {tuple(input_shape)} and {n_classes} classes: "
            f"{' '.join(str(exc).split())[:300]}"
        ) from exc
    return model


def tile_split(cfg: dict[str, Any], tile: int) -> str:
    return next((s for s, tiles in cfg["segmentation"]["tiles"].items() if tile in tiles), "none")


def evaluate_fcn(
    cfg: dict[str, Any],
    weights: Path,
    tile: int,
    out_dir: Path,
    experiment: str | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Predict one whole tile and score it; metrics.json is written last."""
    from .metrics import confusion_matrix, scores
    from .train import setup_runtime

    seg = cfg["segmentation"]
    info_path = Path(weights).parent / "train.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    channels_cfg = 4 if seg["dsm"] else 3
    shape = tuple(info.get("input_shape", (seg["patch_size"], seg["patch_size"], channels_cfg)))
    class_names = tuple(info.get("class_names", vh.CLASSES))
    source = vh.TileSource.from_config(cfg)
    source.check_exists([tile], tile_split(cfg, tile))
    t = vh.read_tile(source, tile)
    channels = t.channels()
    if channels.shape[-1] != shape[-1]:
        raise ConfigError(
            f"segmentation.dsm: the model in {weights} takes {shape[-1]} channels, tile {tile} gives "
            f"{channels.shape[-1]}"
        )
    setup_runtime(seg["seed"], cfg["train"]["deterministic"], threads)
    model = load_fcn(Path(weights), shape, len(class_names))
    ev = seg["evaluate"]
    t0 = time.perf_counter()
    probs = predict_tile(model, channels, shape[0], ev["overlap"], ev["batch_size"])
    seconds = time.perf_counter() - t0
    pred = probs.argmax(axis=-1).astype(np.uint8)
    cm = confusion_matrix(t.mask.ravel(), pred.ravel(), len(class_names))
    result = scores(cm)
    predicted = cm.sum(axis=0)
    f1 = [
        None if (s + p) == 0 else float(2 * d / (s + p))
        for d, s, p in zip(np.diag(cm), result["support"], predicted, strict=True)
    ]
    metrics = {
        "experiment": experiment or info.get("experiment") or Path(weights).parent.name,
        "tile": int(tile),
        "tile_split": tile_split(cfg, tile),
        "tile_shape": list(t.shape),
        "class_names": list(class_names),
        **result,
        "f1": f1,
        "predicted_pixels": predicted.astype(int).tolist(),
        "confusion_matrix": cm.tolist(),
        "windows": int(len(vh.grid_origins(t.shape, shape[0], ev["overlap"]))),
        "window_overlap": ev["overlap"],
        "predict_seconds": seconds,
        "pixels_per_second": t.mask.size / seconds if seconds else None,
        "weights": str(weights),
        "train": info,
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = list(class_names)
    write_text(
        out_dir / "confusion.csv",
        "true\\pred," + ",".join(names) + "\n"
        + "".join(f"{n}," + ",".join(map(str, row)) + "\n" for n, row in zip(names, cm.tolist(), strict=True)),
    )
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["class", "accuracy", "f1", "pixels", "predicted_pixels"])
    for n, a, f, s, p in zip(names, result["per_class_accuracy"], f1, result["support"], predicted, strict=True):
        writer.writerow([n, "" if a is None else f"{a:.6f}", "" if f is None else f"{f:.6f}", s, int(p)])
    write_text(out_dir / "per_class.csv", buf.getvalue())
    save_png(out_dir / "prediction.png", vh.encode_labels(pred))
    save_comparison(
        out_dir / "comparison.png", t.image, t.mask, pred, names,
        f"{metrics['experiment']} | area {tile} | OA {result['OA']:.3f}",
    )
    write_json(out_dir / "metrics.json", metrics)
    return metrics


def save_png(path: Path, rgb: np.ndarray) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.image

    with atomic_path(path) as tmp:
        matplotlib.image.imsave(tmp, rgb, format="png")


def save_comparison(
    path: Path, image: np.ndarray, mask: np.ndarray, pred: np.ndarray, names: list[str], title: str
) -> None:
    """IRRG | ground truth | prediction, side by side, in the ISPRS colours (downsampled)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    step = max(1, int(math.ceil(max(mask.shape) / 600)))
    panels = [(image[::step, ::step], "IRRG"), (vh.encode_labels(mask[::step, ::step]), "ground truth"),
              (vh.encode_labels(pred[::step, ::step]), "prediction")]
    h, w = mask[::step, ::step].shape
    fig, axes = plt.subplots(1, 3, figsize=(3 * 3.2, 3.2 * h / w + 0.9))
    for ax, (img, label) in zip(axes, panels, strict=True):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(label, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])  # keep the frame: white (impervious) areas touch the border
    colours = np.asarray(vh.COLORMAP) / 255.0
    handles = [Patch(facecolor=colours[i], edgecolor="0.5", label=n) for i, n in enumerate(names)]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# report


def _pct(v: Any) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}"


def report_tables(runs: list[dict[str, Any]], experiments: list[str]) -> dict[str, Any]:
    """tile_oa (experiment x tile), per_class (long form), timing (per experiment)."""
    import pandas as pd

    order = {e: i for i, e in enumerate(experiments)}
    runs = sorted(runs, key=lambda m: (order.get(m["experiment"], len(order)), m["tile"]))
    tiles = sorted({m["tile"] for m in runs})
    exps = list(dict.fromkeys(m["experiment"] for m in runs))
    oa = {(m["experiment"], m["tile"]): m["OA"] for m in runs}
    tile_oa = pd.DataFrame(
        [
            {
                "experiment": e,
                **{f"area{t} OA (%)": _pct(oa.get((e, t))) for t in tiles},
                "mean OA (%)": _pct(float(np.mean([oa[(e, t)] for t in tiles if (e, t) in oa]))),
            }
            for e in exps
        ]
    )
    per_class = pd.DataFrame(
        [
            {
                "tile": m["tile"],
                "experiment": m["experiment"],
                "class": name,
                "accuracy (%)": _pct(m["per_class_accuracy"][k]),
                "F1 (%)": _pct(m["f1"][k]),
                "pixels": m["support"][k],
                "predicted pixels": m["predicted_pixels"][k],
            }
            for m in runs
            for k, name in enumerate(m["class_names"])
        ]
    )
    firsts = {m["experiment"]: m for m in reversed(runs)}
    timing_rows = []
    for e in exps:
        t = firsts[e]["train"]
        run = t.get("run", {})
        timing_rows.append(
            {
                "experiment": e,
                "pretrained": t.get("pretrained", "?"),
                "augment": t.get("augment", "?"),
                "policy": t.get("policy", "?"),
                "trainable params": f"{t.get('trainable_params', 0):,}",
                "epochs": t.get("epochs_run", 0),
                "best epoch": t.get("best_epoch", 0),
                "train s": f"{t.get('train_seconds', 0.0):.1f}",
                "s/epoch": f"{t.get('seconds_per_epoch', 0.0):.2f}",
                "patches/s": f"{t.get('samples_per_second', 0.0):.1f}",
                "GPU-hours": f"{t.get('gpu_hours', 0.0):.4f}",
                "SLURM job": run.get("slurm_job_id", "local"),
                "nodes": run.get("slurm_nodelist", "local"),
            }
        )
    return {"tile_oa": tile_oa, "per_class": per_class, "timing": pd.DataFrame(timing_rows), "tiles": tiles}


CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table.t{border-collapse:collapse;margin:.5em 0 1.5em}table.t td,table.t th{padding:3px 10px;border-bottom:1px solid #ddd;text-align:right}
table.t td:first-child,table.t th:first-child{text-align:left}img{max-width:100%}.note{color:#555;font-size:.9em}
.sw{display:inline-block;width:.9em;height:.9em;border:1px solid #888;vertical-align:middle;margin-right:.3em}"""


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _table(df: Any, table_id: str) -> str:
    return df.to_html(index=False, escape=True, table_id=table_id, border=0, classes="t")


def build_report(cfg: dict[str, Any], run_dirs: list[Path], out: Path) -> Path:
    """Tables (CSV + Markdown) and ``segmentation.html`` (images inlined) over evaluated tiles."""
    import pandas as pd

    runs = []
    for d in run_dirs:
        path = Path(d) / "metrics.json"
        if not path.is_file():
            raise DataFormatError(f"{path}: missing; run `rstransfer evaluate-fcn` for this experiment and tile")
        m = json.loads(path.read_text())
        m["_dir"] = Path(d)
        runs.append(m)
    if not runs:
        raise DataFormatError("report-segmentation: no evaluated tiles given")
    seg = cfg["segmentation"]
    tables = report_tables(runs, list(seg["experiments"]))
    out.mkdir(parents=True, exist_ok=True)
    for name in ("tile_oa", "per_class", "timing"):
        with atomic_path(out / f"{name}.csv") as tmp:
            tables[name].to_csv(tmp, index=False)
    write_text(out / "tile_oa.md", tables["tile_oa"].to_markdown(index=False) + "\n")
    write_text(out / "timing.md", tables["timing"].to_markdown(index=False) + "\n")
    per_tile = {t: _per_class_wide(tables["per_class"], t) for t in tables["tiles"]}
    write_text(
        out / "per_class.md",
        "".join(f"## area {t}\n\n{df.to_markdown(index=False)}\n\n" for t, df in per_tile.items()),
    )
    legend = " ".join(
        f'<span class=sw style="background:rgb{c}"></span>{html.escape(n)}' for n, c in zip(vh.CLASSES, vh.COLORMAP, strict=True)
    )
    first = runs[0]
    syn = seg["synthetic"]["enabled"]
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>rstransfer segmentation</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>rstransfer: {html.escape(MODEL_NAME)} on ISPRS Vaihingen tiles</h1>",
        f"<p class=note>Team <b>{html.escape(cfg['team'])}</b>. "
        + ("<b>Synthetic stand-in tiles</b> (made-up content in the ISPRS file format), not the ISPRS data. " if syn else "")
        + f"Patches {seg['patch_size']} px, overlap {seg['overlap']}; test tiles predicted whole with "
        f"{first['window_overlap']} window overlap (softmax averaged). Training tiles {seg['tiles']['train']}, "
        f"validation {seg['tiles']['val']}, test {seg['tiles']['test']}. Accuracy = correct / true pixels of "
        f"the class.</p><p class=note>Classes: {legend}</p>",
        f"<p class=note>Experiments: {_experiment_notes(runs)}.</p>",
        "<h2>Overall accuracy per test tile</h2>",
        _table(tables["tile_oa"], "tile_oa"),
        "<h2>Training time</h2>",
        _table(tables["timing"], "timing"),
    ]
    for t, df in per_tile.items():
        parts += [f"<h2>Per-class accuracy, area {t}</h2>", _table(df, f"per_class_area{t}")]
    parts.append("<h2>Predictions</h2>")
    for m in runs:
        names = m["class_names"]
        cm = pd.DataFrame(m["confusion_matrix"], columns=names)
        cm.insert(0, "true \\ predicted", names)
        parts += [
            f"<h3>{html.escape(m['experiment'])}, area {m['tile']} (OA {_pct(m['OA'])} %)</h3>",
            _img(m["_dir"] / "comparison.png", f"{m['experiment']} area {m['tile']}"),
            "<p class=note>Confusion matrix in pixels:</p>",
            _table(cm, f"confusion_{m['experiment']}_area{m['tile']}"),
        ]
    parts.append("</body></html>")
    index = out / "segmentation.html"
    write_text(index, "\n".join(parts))
    return index


def _experiment_notes(runs: list[dict[str, Any]]) -> str:
    """One phrase per experiment; a run: start is labelled as the stand-in it is."""
    notes = {}
    for m in runs:
        t = m.get("train", {})
        spec = str(t.get("pretrained", "?"))
        start = {"none": "random init", "imagenet": "ImageNet weights (local Keras file)"}.get(spec, f"weights {html.escape(spec)}")
        if spec.startswith(RUN_PREFIX):
            start = (
                f"the backbone that {spec[len(RUN_PREFIX):]} trained in this workflow "
                "(a stand-in for a pretrained backbone, <b>not ImageNet</b>)"
            )
        aug = "augmentation" if t.get("augment") else "no augmentation"
        notes[m["experiment"]] = f"<b>{html.escape(m['experiment'])}</b>: {start}, {aug}, policy {t.get('policy', '?')}"
    return "; ".join(notes.values())


def _per_class_wide(long: Any, tile: int) -> Any:
    """Rows = classes; pixel count, then accuracy (%) per experiment."""
    import pandas as pd

    part = long[long["tile"] == tile]
    classes = list(dict.fromkeys(part["class"]))
    wide = pd.DataFrame({"class": classes})
    wide["pixels"] = [int(part[part["class"] == c]["pixels"].iloc[0]) for c in classes]
    for e in dict.fromkeys(part["experiment"]):
        sub = part[part["experiment"] == e].set_index("class")
        wide[f"{e} acc. (%)"] = [sub.loc[c, "accuracy (%)"] for c in classes]
    return wide
