"""Steps of the U-Net study: prepare -> pretrain -> finetune x policies x seeds -> evaluate -> report.

* ``prepare``: read the scene, remap class ids (ignore label -1), cut the row stripes, scale the
  bands on the training stripe -> ``scene.npz``, ``prepare.json``, ``classes.csv``.
* ``pretrain``: train the U-Net from scratch (or from an inflated RGB U-Net, ``init_weights``)
  on random patches of the training stripe -> ``model.keras``, ``history.csv``, ``train.json``.
* ``finetune/{policy}/seed{seed}``: replace the head of the pretrained U-Net (every skip kept,
  every other weight copied), retrain on the same data under the policy's learning-rate factors.
* ``evaluate/{policy}/seed{seed}``: whole-frame prediction; pixel accuracy, per-class IoU, mIoU
  and the confusion matrix per stripe (train = the data it was retrained on, test = held out);
  prediction PNGs. ``policy = pretrained`` evaluates the pretrained model itself.
* ``report``: ``report.py``.

TensorFlow is imported inside the step functions only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rstransfer.core.errors import ConfigError, DataFormatError
from rstransfer.core.io import write_json, write_text

from . import data as ud
from .policies import PRETRAINED, get_policy

STUDY = "unet"
MODEL_FILE = "model.keras"
SCENE_FILE = "scene.npz"
REGIONS = ("train", "val", "test")


# ---------------------------------------------------------------------------------------------
# runs, inputs and params (no TensorFlow)


def check(cfg: dict[str, Any]) -> None:
    sec = cfg[STUDY]
    if sec["patches"]["size"] % 2 ** sec["model"]["depth"]:
        raise ConfigError(
            f"unet.patches.size: {sec['patches']['size']} is not divisible by 2**unet.model.depth = "
            f"{2 ** sec['model']['depth']}"
        )
    if PRETRAINED in sec["policies"]:
        raise ConfigError(f"unet.policies: {PRETRAINED!r} is reserved for the pretrained model's evaluation")
    if sec["enabled"]:
        ud.check_files(cfg)


def finetune_runs(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"policy": p, "seed": s} for p in cfg[STUDY]["policies"] for s in cfg[STUDY]["seeds"]]


def evaluate_runs(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"policy": PRETRAINED, "seed": cfg[STUDY]["pretrain_seed"]}, *finetune_runs(cfg)]


def _run_path(run: dict[str, Any]) -> str:
    return f"{run['policy']}/seed{run['seed']}"


def prepare_inputs(cfg: dict[str, Any], run: dict[str, Any], layout: Any) -> dict[str, Any]:
    return ud.data_files(cfg)


def pretrain_inputs(cfg: dict[str, Any], run: dict[str, Any], layout: Any) -> dict[str, Any]:
    out = {"prepared": layout.run_dir(STUDY, "prepare")}
    if cfg[STUDY]["init_weights"]:
        out["init"] = str(ud.resolve(cfg, cfg[STUDY]["init_weights"]))
    return out


def finetune_inputs(cfg: dict[str, Any], run: dict[str, Any], layout: Any) -> dict[str, Any]:
    return {"prepared": layout.run_dir(STUDY, "prepare"), "pretrained": layout.run_dir(STUDY, "pretrain")}


def evaluate_inputs(cfg: dict[str, Any], run: dict[str, Any], layout: Any) -> dict[str, Any]:
    model = (layout.run_dir(STUDY, "pretrain") if run["policy"] == PRETRAINED
             else layout.run_dir(STUDY, "finetune", _run_path(run)))
    return {"prepared": layout.run_dir(STUDY, "prepare"), "model": model}


def report_inputs(cfg: dict[str, Any], run: dict[str, Any], layout: Any) -> dict[str, Any]:
    return {
        "prepared": layout.run_dir(STUDY, "prepare"),
        "pretrained": layout.run_dir(STUDY, "pretrain"),
        "finetuned": [layout.run_dir(STUDY, "finetune", _run_path(r)) for r in finetune_runs(cfg)],
        "evaluated": [layout.run_dir(STUDY, "evaluate", _run_path(r)) for r in evaluate_runs(cfg)],
    }


def _data_params(cfg: dict[str, Any]) -> dict[str, Any]:
    return {k: cfg[STUDY][k] for k in ("data", "split")}


def _train_params(cfg: dict[str, Any]) -> dict[str, Any]:
    return {**_data_params(cfg), **{k: cfg[STUDY][k] for k in ("patches", "model", "pretrain", "init_weights",
                                                               "pretrain_seed")}}


def prepare_params(cfg: dict[str, Any], run: dict[str, Any]) -> Any:
    return _data_params(cfg)


def pretrain_params(cfg: dict[str, Any], run: dict[str, Any]) -> Any:
    return {**_train_params(cfg), "deterministic": cfg.get("deterministic", False)}


def finetune_params(cfg: dict[str, Any], run: dict[str, Any]) -> Any:
    return {**pretrain_params(cfg, run), "finetune": cfg[STUDY]["finetune"]}


def evaluate_params(cfg: dict[str, Any], run: dict[str, Any]) -> Any:
    return {**_data_params(cfg), "depth": cfg[STUDY]["model"]["depth"]}


# ---------------------------------------------------------------------------------------------
# prepare


def prepare(ctx: Any) -> dict[str, Any]:
    import pandas as pd

    from rstransfer.core.report import write_tables

    prepared, summary = ud.prepare_scene(ctx.cfg)
    ud.save_prepared(ctx.out / SCENE_FILE, prepared)
    write_json(ctx.out / "prepare.json", summary)
    rows = [{"class": k, "dataset_id": cid, "name": name, **summary["pixels_per_class"][name]}
            for k, (cid, name) in enumerate(zip(prepared.class_ids, prepared.class_names, strict=True))]
    write_tables(ctx.out, {"classes": pd.DataFrame(rows)}, markdown=False)
    f, h, w, b = prepared.images.shape
    return {"line": f"prepared {summary['dataset']} {f} frame(s) {h}x{w} px x {b} bands, "
                    f"{prepared.n_classes} classes {prepared.class_ids} -> {ctx.final}"}


# ---------------------------------------------------------------------------------------------
# training


def _load(ctx: Any) -> ud.Prepared:
    return ud.load_prepared(Path(ctx.inputs["prepared"]) / SCENE_FILE)


def _make_data(p: ud.Prepared, sec: dict[str, Any], fit_cfg: dict[str, Any], seed: int, dist: Any) -> Any:
    multiple = 2 ** sec["model"]["depth"]

    def make(first_epoch: int) -> dict[str, Any]:
        train, steps = ud.patch_dataset(p, sec["patches"]["size"], sec["patches"]["per_image"],
                                        fit_cfg["batch_size"], seed, dist.shard(), first_epoch)
        val, val_steps = ud.frame_dataset(p, "val", multiple, dist.shard(), repeat=dist.size > 1)
        return {"train": train, "val": val, "steps": steps, "val_steps": val_steps}

    return make


def _train_and_save(ctx: Any, model: Any, factors: Any, fit_cfg: dict[str, Any], seed: int, dist: Any,
                    p: ud.Prepared, extra: dict[str, Any]) -> dict[str, Any]:
    from rstransfer.core.fit import fit, save_record
    from rstransfer.core.io import atomic_path
    from rstransfer.core.lr_factors import compile_with_factors, group_table

    sec = ctx.section
    trainer = compile_with_factors(model, factors, fit_cfg, dist, metrics=[], weighted_metrics=["accuracy"])
    record = fit(
        trainer, _make_data(p, sec, fit_cfg, seed, dist), fit_cfg, seed, ctx.checkpoint_dir, dist,
        {"study": STUDY, "step": ctx.step, "run": ctx.run, "inputs": ctx.input_digest(),
         "patches": sec["patches"], "model": sec["model"], **extra},
    )
    groups = group_table(model, factors, fit_cfg["learning_rate"])
    record.update(extra, groups=[{**g, "layers": len(g["layers"]), "first_layers": g["layers"][:4]} for g in groups],
                  learning_rate=fit_cfg["learning_rate"], optimizer=fit_cfg["optimizer"])
    if dist.is_root:
        with atomic_path(ctx.out / MODEL_FILE) as tmp:
            model.save(tmp)
        save_record(ctx.out, record)
    dist.barrier()
    return record


def _initial_model(ctx: Any, p: ud.Prepared) -> tuple[Any, str]:
    from rstransfer.core.fit import load_model

    from .model import build_unet, inflate_first_conv, n_classes_of, replace_head, unet_depth

    m = ctx.section["model"]
    if "init" not in ctx.inputs:
        model = build_unet((None, None, p.bands), p.n_classes, m["depth"], m["base_filters"],
                           batch_norm=m["batch_norm"], bn_momentum=m["bn_momentum"], dropout=m["dropout"])
        return model, "random"
    path = Path(ctx.inputs["init"])
    rgb = load_model(path)
    if unet_depth(rgb) != m["depth"]:
        raise DataFormatError(f"{path}: U-Net of depth {unet_depth(rgb)}, unet.model.depth is {m['depth']}")
    try:
        model = inflate_first_conv(rgb, p.bands)
    except (ValueError, KeyError) as exc:
        raise DataFormatError(f"{path}: cannot inflate to {p.bands} bands ({exc}); set unet.init_weights") from None
    if n_classes_of(model) != p.n_classes:
        model = replace_head(model, p.n_classes)
    return model, f"inflated from {path.name}"


def pretrain(ctx: Any) -> dict[str, Any]:
    from rstransfer.core import dist as dist_mod
    from rstransfer.core.fit import setup_runtime
    from rstransfer.core.lr_factors import LRFactors

    sec = ctx.section
    seed = sec["pretrain_seed"]
    setup_runtime(seed, ctx.cfg.get("deterministic", False), ctx.threads)
    dist = dist_mod.init(ctx.cfg["distribution"]["mode"])
    p = _load(ctx)
    ud.check_patch(p, sec["patches"]["size"], sec["model"]["depth"])
    model, init = _initial_model(ctx, p)
    record = _train_and_save(ctx, model, LRFactors(default=1.0), sec["pretrain"], seed, dist, p,
                             {"policy": PRETRAINED, "init": init})
    monitor = sec["pretrain"]["monitor"]
    return {"line": f"pretrained: best {monitor} {record['best_' + monitor]:.4f} at epoch "
                    f"{record['best_epoch']}/{record['epochs_run']} -> {ctx.final}"}


def finetune(ctx: Any) -> dict[str, Any]:
    from rstransfer.core import dist as dist_mod
    from rstransfer.core.fit import load_model, setup_runtime

    from .model import replace_head

    sec = ctx.section
    policy = get_policy(ctx.run["policy"])
    seed = int(ctx.run["seed"])
    setup_runtime(seed, ctx.cfg.get("deterministic", False), ctx.threads)
    dist = dist_mod.init(ctx.cfg["distribution"]["mode"])
    p = _load(ctx)
    ud.check_patch(p, sec["patches"]["size"], sec["model"]["depth"])
    path = Path(ctx.inputs["pretrained"]) / MODEL_FILE
    pretrained = load_model(path)
    if pretrained.input_shape[-1] != p.bands:
        raise DataFormatError(f"{path}: the model reads {pretrained.input_shape[-1]} bands, the scene has {p.bands}")
    model = replace_head(pretrained, p.n_classes)
    fit_cfg = dict(sec["finetune"])
    if policy.lr_from == "pretrain":
        fit_cfg["learning_rate"] = sec["pretrain"]["learning_rate"]
    record = _train_and_save(ctx, model, policy.factors, fit_cfg, seed, dist, p,
                             {"policy": policy.name, "factors": policy.factors.describe()})
    monitor = fit_cfg["monitor"]
    return {"line": f"finetuned {policy.name} seed{seed}: best {monitor} {record['best_' + monitor]:.4f} "
                    f"-> {ctx.final}"}


# ---------------------------------------------------------------------------------------------
# evaluate

PALETTE = np.array([
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75), (227, 119, 194),
    (127, 127, 127), (188, 189, 34), (23, 190, 207), (174, 199, 232), (255, 187, 120), (152, 223, 138),
    (255, 152, 150), (197, 176, 213), (196, 156, 148), (247, 182, 210), (199, 199, 199), (219, 219, 141),
    (158, 218, 229),
], dtype=np.uint8)


def colour(classes: np.ndarray) -> np.ndarray:
    """Class map -> RGB (H, W, 3) uint8; ignore (-1) black."""
    rgb = PALETTE[np.mod(np.maximum(classes, 0), len(PALETTE))]
    rgb[classes < 0] = 0
    return rgb


def write_png(path: Path, rgb: np.ndarray, scale: int = 1) -> None:
    from PIL import Image

    from rstransfer.core.io import atomic_path

    img = Image.fromarray(np.ascontiguousarray(rgb))
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")


def iou_scores(cm: np.ndarray) -> dict[str, Any]:
    """Per-class IoU = TP / (TP + FP + FN) (None where the class is neither true nor predicted)
    and mIoU over the classes that are."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    union = cm.sum(axis=0) + cm.sum(axis=1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
    return {"per_class_iou": [None if np.isnan(v) else float(v) for v in iou],
            "mIoU": float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")}


def region_metrics(p: ud.Prepared, pred: np.ndarray, region: str) -> tuple[dict[str, Any], np.ndarray]:
    from rstransfer.core.metrics import confusion_matrix, scores

    mask = p.mask(region)
    truth = np.broadcast_to(p.labels, pred.shape)[:, mask]
    cm = confusion_matrix(truth.ravel(), pred[:, mask].ravel(), p.n_classes)
    s = scores(cm)
    return {"pixel_accuracy": s["OA"], "pixels": int(cm.sum()), "support": s["support"], **iou_scores(cm)}, cm


def evaluate(ctx: Any) -> dict[str, Any]:
    import pandas as pd

    from rstransfer.core.fit import load_model, setup_runtime
    from rstransfer.core.report import write_tables

    setup_runtime(0, ctx.cfg.get("deterministic", False), ctx.threads)
    p = _load(ctx)
    path = Path(ctx.inputs["model"]) / MODEL_FILE
    model = load_model(path)
    if model.input_shape[-1] != p.bands or model.output_shape[-1] != p.n_classes:
        raise DataFormatError(f"{path}: model reads {model.input_shape[-1]} bands / predicts "
                              f"{model.output_shape[-1]} classes; the scene has {p.bands} / {p.n_classes}")
    pred = ud.predict_frames(model, p, 2 ** ctx.section["model"]["depth"])
    metrics: dict[str, Any] = {"policy": ctx.run["policy"], "seed": int(ctx.run["seed"]),
                               "class_names": p.class_names, "regions": {}}
    for region in REGIONS:
        metrics["regions"][region], cm = region_metrics(p, pred, region)
        write_tables(ctx.out, {f"confusion_{region}": pd.DataFrame(cm, columns=p.class_names).assign(
            true=p.class_names)[["true", *p.class_names]]}, markdown=False)
    test = metrics["regions"]["test"]
    write_tables(ctx.out, {"per_class": pd.DataFrame({
        "class": p.class_names, "iou_test": test["per_class_iou"], "support_test": test["support"],
        "iou_train": metrics["regions"]["train"]["per_class_iou"]})}, markdown=False)
    write_json(ctx.out / "metrics.json", metrics)
    scale = max(1, 256 // max(p.labels.shape))
    write_png(ctx.out / "truth.png", colour(p.labels.astype(np.int64)), scale)
    for k, frame in enumerate(pred):
        write_png(ctx.out / f"prediction_frame{k}.png", colour(frame), scale)
    write_text(ctx.out / "stripes.txt", " ".join(f"{r}={ud.stripe(p.split, r)}" for r in REGIONS) + "\n")
    return {"line": f"evaluated {ctx.run['policy']} seed{ctx.run['seed']}: test pixel accuracy "
                    f"{test['pixel_accuracy']:.4f}, mIoU {test['mIoU']:.4f} -> {ctx.final}"}
