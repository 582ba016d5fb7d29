"""Segmentation report: experiment x tile OA, per-class tables per tile and training time as
CSV + Markdown, and one self-contained ``index.html``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rstransfer.core.errors import DataFormatError
from rstransfer.core.io import write_text
from rstransfer.core.report import esc, img, page, read_json, table, write_tables
from rstransfer.core.study import StepContext

from .data import CLASSES, COLORMAP
from .settings import MODEL_NAME, RUN_PREFIX


def _kappa(v: Any) -> str:
    return "n/a" if v is None else f"{v:.3f}"


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
    kappa = {(m["experiment"], m["tile"]): m["Kappa"] for m in runs}
    tile_oa = pd.DataFrame(
        [
            {
                "experiment": e,
                **{f"area{t} OA (%)": _pct(oa.get((e, t))) for t in tiles},
                "mean OA (%)": _pct(float(np.mean([oa[(e, t)] for t in tiles if (e, t) in oa]))),
                **{f"area{t} Kappa": _kappa(kappa.get((e, t))) for t in tiles},
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


def report_step(ctx: StepContext) -> dict[str, Any]:
    index = build_report(ctx.cfg, [Path(p) for p in ctx.inputs["runs"]], ctx.out)
    return {"line": f"report: {ctx.final / index.name}"}


def build_report(cfg: dict[str, Any], run_dirs: list[Path], out: Path) -> Path:
    """Tables (CSV + Markdown) and ``index.html`` (images inlined) over evaluated tiles."""
    import pandas as pd

    runs = []
    for d in run_dirs:
        m = read_json(Path(d) / "metrics.json", "rstransfer evaluate --study segmentation")
        m["_dir"] = Path(d)
        runs.append(m)
    if not runs:
        raise DataFormatError("report-segmentation: no evaluated tiles given")
    seg = cfg["segmentation"]
    tables = report_tables(runs, list(seg["experiments"]))
    write_tables(out, {k: tables[k] for k in ("tile_oa", "timing")})
    write_tables(out, {"per_class": tables["per_class"]}, markdown=False)
    per_tile = {t: _per_class_wide(tables["per_class"], t) for t in tables["tiles"]}
    write_text(
        out / "per_class.md",
        "".join(f"## area {t}\n\n{df.to_markdown(index=False)}\n\n" for t, df in per_tile.items()),
    )
    legend = " ".join(
        f'<span class=sw style="background:rgb{c}"></span>{esc(n)}' for n, c in zip(CLASSES, COLORMAP, strict=True)
    )
    first = runs[0]
    syn = seg["synthetic"]["enabled"]
    parts = [
        f"<h1>rstransfer: {esc(MODEL_NAME)} on ISPRS Vaihingen tiles</h1>",
        f"<p class=note>Team <b>{esc(cfg['team'])}</b>. "
        + ("<b>Synthetic stand-in tiles</b> (made-up content in the ISPRS file format), not the ISPRS data. " if syn else "")
        + f"Patches {seg['patch_size']} px, overlap {seg['overlap']}; test tiles predicted whole with "
        f"{first['window_overlap']} window overlap (softmax averaged). Training tiles {seg['tiles']['train']}, "
        f"validation {seg['tiles']['val']}, test {seg['tiles']['test']}. Accuracy = correct / true pixels of "
        f"the class.</p><p class=note>Classes: {legend}</p>",
        f"<p class=note>Experiments: {_experiment_notes(runs)}.</p>",
        "<h2>Overall accuracy and Kappa per test tile</h2>",
        f"<p class=note>{_baseline_note(runs)}</p>",
        table(tables["tile_oa"], "tile_oa"),
        "<h2>Training time</h2>",
        table(tables["timing"], "timing"),
    ]
    for t, df in per_tile.items():
        parts += [f"<h2>Per-class accuracy, area {t}</h2>", table(df, f"per_class_area{t}")]
    parts.append("<h2>Predictions</h2>")
    for m in runs:
        names = m["class_names"]
        cm = pd.DataFrame(m["confusion_matrix"], columns=names)
        cm.insert(0, "true \\ predicted", names)
        parts += [
            f"<h3>{esc(m['experiment'])}, area {m['tile']} (OA {_pct(m['OA'])} %)</h3>",
            img(m["_dir"] / "comparison.png", f"{m['experiment']} area {m['tile']}"),
            "<p class=note>Confusion matrix in pixels:</p>",
            table(cm, f"confusion_{m['experiment']}_area{m['tile']}"),
        ]
    index = out / "index.html"
    write_text(index, page("rstransfer segmentation", parts))
    return index


def _baseline_note(runs: list[dict[str, Any]]) -> str:
    """What chance looks like: predicting the majority class everywhere gives this OA and Kappa 0."""
    support = np.sum([m["support"] for m in runs[: len({m["tile"] for m in runs})]], axis=0)
    k = int(np.argmax(support))
    share = support[k] / max(1, support.sum())
    return (f"Baseline: predicting the majority class ({esc(runs[0]['class_names'][k])}) everywhere gives OA "
            f"{100 * share:.1f} % and Kappa 0 on these test tiles; a model below that has not learned the task.")


def _experiment_notes(runs: list[dict[str, Any]]) -> str:
    """One phrase per experiment; a run: start is labelled as the stand-in it is."""
    notes = {}
    for m in runs:
        t = m.get("train", {})
        spec = str(t.get("pretrained", "?"))
        start = {"none": "random init", "imagenet": "ImageNet weights (local Keras file)"}.get(spec, f"weights {esc(spec)}")
        if spec.startswith(RUN_PREFIX):
            start = (
                f"the backbone that {spec[len(RUN_PREFIX):]} trained in this workflow "
                "(a stand-in for a pretrained backbone, <b>not ImageNet</b>)"
            )
        aug = "augmentation" if t.get("augment") else "no augmentation"
        notes[m["experiment"]] = f"<b>{esc(m['experiment'])}</b>: {start}, {aug}, policy {t.get('policy', '?')}"
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
