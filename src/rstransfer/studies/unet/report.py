"""Report of the U-Net study: every policy next to the pretrained model, on the same pixels.

The page opens with a verdict box: each policy whose pixel accuracy (on the stripe it was
retrained on, or on the held-out test stripe) is more than ``unet.report.tolerance`` below the
pretrained model's is listed in red as worse than before fine-tuning (the forum thread's
failure); otherwise the box says that no policy lost accuracy. Then the policy table (factors,
learning rate, trainable parameters, accuracy with its change against the pretrained model,
mIoU), an accuracy chart, per-class IoU, the learning-rate groups, training times and the
prediction maps. Every table and chart has its CSV beside ``index.html``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from rstransfer.core.io import write_text
from rstransfer.core.report import esc, figure, mean_std, page, pyplot, read_json, save_figure, table, write_tables

from .policies import POLICIES, PRETRAINED, get_policy, stage_factors

EVALUATE = "rstransfer evaluate --study unet"
TRAIN = "rstransfer finetune --study unet"


def _train_record(folder: Path) -> dict[str, Any]:
    return read_json(Path(folder) / "train.json", TRAIN)


def runs_frame(evaluated: list[Path], trained: dict[str, Path]) -> pd.DataFrame:
    """One row per evaluated run (pretrained first), with its training record."""
    rows = []
    for folder in evaluated:
        m = read_json(Path(folder) / "metrics.json", EVALUATE)
        key = m["policy"] if m["policy"] == PRETRAINED else f"{m['policy']}/seed{m['seed']}"
        t = _train_record(trained[key])
        reg = m["regions"]
        rows.append({
            "policy": m["policy"], "seed": m["seed"],
            "train_accuracy": reg["train"]["pixel_accuracy"], "test_accuracy": reg["test"]["pixel_accuracy"],
            "test_mIoU": reg["test"]["mIoU"], "train_mIoU": reg["train"]["mIoU"],
            "learning_rate": t["learning_rate"], "trainable_params": t["trainable_params"],
            "total_params": t["total_params"], "epochs_run": t["epochs_run"], "best_epoch": t["best_epoch"],
            "train_seconds": t["train_seconds"], "_metrics": m, "_train": t, "_dir": Path(folder),
        })
    return pd.DataFrame(rows)


def summary_table(df: pd.DataFrame, tolerance: float) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """(numeric summary for CSV, display table, names of the policies worse than pretrained)."""
    base = df[df["policy"] == PRETRAINED].iloc[0]
    numeric, shown, worse = [], [], []
    for policy, g in df.groupby("policy", sort=False):
        factors = stage_factors(get_policy(policy)) if policy != PRETRAINED else {}
        d_train = g["train_accuracy"].mean() - base["train_accuracy"]
        d_test = g["test_accuracy"].mean() - base["test_accuracy"]
        bad = policy != PRETRAINED and min(d_train, d_test) < -tolerance
        if bad:
            worse.append(policy)
        verdict = "reference" if policy == PRETRAINED else ("WORSE than pretrained" if bad else "ok")
        numeric.append({
            "policy": policy, "seeds": len(g), **{f"factor_{k}": v for k, v in factors.items()},
            "learning_rate": g["learning_rate"].iloc[0], "trainable_params": int(g["trainable_params"].iloc[0]),
            "train_accuracy": g["train_accuracy"].mean(), "delta_train": d_train,
            "test_accuracy": g["test_accuracy"].mean(), "delta_test": d_test, "test_mIoU": g["test_mIoU"].mean(),
            "verdict": verdict,
        })
        shown.append({
            "policy": policy,
            "factors enc / dec / head": " / ".join(f"{factors[k]:g}" for k in ("encoder", "decoder", "head"))
            if factors else "(pre-training)",
            "learning rate": f"{g['learning_rate'].iloc[0]:g}",
            "trainable params": f"{int(g['trainable_params'].iloc[0]):,}",
            "accuracy, retrained stripe (%)": mean_std(g["train_accuracy"], 100),
            "Δ (points)": "" if policy == PRETRAINED else f"{100 * d_train:+.2f}",
            "accuracy, test stripe (%)": mean_std(g["test_accuracy"], 100),
            "Δ test (points)": "" if policy == PRETRAINED else f"{100 * d_test:+.2f}",
            "mIoU, test (%)": mean_std(g["test_mIoU"], 100),
            "verdict": verdict,
        })
    return pd.DataFrame(numeric), pd.DataFrame(shown), worse


def verdict_box(worse: list[str], numeric: pd.DataFrame, tolerance: float) -> str:
    base = numeric[numeric["policy"] == PRETRAINED].iloc[0]
    ref = (f"pretrained model: {100 * base['train_accuracy']:.2f} % on the retrained stripe, "
           f"{100 * base['test_accuracy']:.2f} % on the test stripe")
    if not worse:
        return (f'<div id=verdict style="border:3px solid #2a2;padding:.8em;background:#efe"><b>No policy lost '
                f"more than {100 * tolerance:g} point(s) of pixel accuracy</b> against the {esc(ref)}.</div>")
    items = "".join(
        f"<li><b>{esc(r.policy)}</b>: {100 * r.train_accuracy:.2f} % ({100 * r.delta_train:+.2f} points) on the "
        f"retrained stripe, {100 * r.test_accuracy:.2f} % ({100 * r.delta_test:+.2f}) on the test stripe</li>"
        for r in numeric[numeric["policy"].isin(worse)].itertuples()
    )
    return (f'<div id=verdict style="border:3px solid #c00;padding:.8em;background:#fee"><b style="color:#c00">'
            f"WORSE THAN BEFORE FINE-TUNING: {len(worse)} polic{'y' if len(worse) == 1 else 'ies'}</b> lost more "
            f"than {100 * tolerance:g} point(s) against the {esc(ref)}:<ul>{items}</ul>Retraining the same data "
            f"with a new head must not lose accuracy: freeze the pretrained layers (factor 0, policy "
            f"<b>head_only</b>) or lower their rate.</div>")


def accuracy_chart(numeric: pd.DataFrame, out: Path) -> str:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(numeric), 3.4))
    x = range(len(numeric))
    ax.bar([i - 0.2 for i in x], 100 * numeric["train_accuracy"], 0.4, label="retrained stripe")
    ax.bar([i + 0.2 for i in x], 100 * numeric["test_accuracy"], 0.4, label="test stripe")
    base = numeric[numeric["policy"] == PRETRAINED].iloc[0]
    ax.axhline(100 * base["train_accuracy"], color="C0", ls="--", lw=1)
    ax.axhline(100 * base["test_accuracy"], color="C1", ls="--", lw=1)
    ax.set_xticks(list(x), numeric["policy"], rotation=20)
    ax.set_ylabel("pixel accuracy (%)")
    ax.set_ylim(max(0.0, 100 * numeric[["train_accuracy", "test_accuracy"]].min().min() - 10), 100)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    save_figure(fig, out / "accuracy.png")
    numeric[["policy", "train_accuracy", "test_accuracy"]].to_csv(out / "accuracy.csv", index=False)
    return figure(out / "accuracy.png", "pixel accuracy per policy; dashed: the pretrained model (accuracy.csv)")


def per_class_table(df: pd.DataFrame) -> pd.DataFrame:
    names = df["_metrics"].iloc[0]["class_names"]
    rows = []
    for policy, g in df.groupby("policy", sort=False):
        ious = pd.DataFrame([m["regions"]["test"]["per_class_iou"] for m in g["_metrics"]], dtype=float)
        rows.append({"policy": policy, **{n: ious[i].mean() for i, n in enumerate(names)}})
    return pd.DataFrame(rows)


def groups_table(df: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for _, r in df.drop_duplicates("policy").iterrows():
        for g in r["_train"]["groups"]:
            rows.append({"policy": r["policy"], "factor": g["factor"], "learning_rate": g["learning_rate"],
                         "layers": g["layers"], "params": g["params"], "first layers": ", ".join(g["first_layers"])})
    return pd.DataFrame(rows)


def report(ctx: Any) -> dict[str, Any]:
    sec = ctx.section
    tol = sec["report"]["tolerance"]
    inputs = ctx.inputs
    trained = {PRETRAINED: Path(inputs["pretrained"])}
    trained.update({"/".join(Path(d).parts[-2:]): Path(d) for d in inputs["finetuned"]})
    df = runs_frame([Path(d) for d in inputs["evaluated"]], trained)
    numeric, shown, worse = summary_table(df, tol)
    prep = read_json(Path(inputs["prepared"]) / "prepare.json", "rstransfer prepare --study unet")
    out = ctx.out
    per_class = per_class_table(df)
    groups = groups_table(df)
    runs = df[[c for c in df.columns if not c.startswith("_")]]
    write_tables(out, {"summary": numeric, "per_class_iou": per_class, "lr_groups": groups, "runs": runs})
    maps = [figure(Path(inputs["evaluated"][0]) / "truth.png", "ground truth (black: no label)")]
    for _, r in df.drop_duplicates("policy").iterrows():
        maps.append(figure(r["_dir"] / "prediction_frame0.png", f"{r['policy']} (seed {r['seed']}), frame 0"))
    policies = "".join(f"<li><b>{esc(p.name)}</b>: {esc(p.description)} <span class=note>({esc(p.factors.describe())}"
                       f")</span></li>" for p in POLICIES.values() if p.name in set(df["policy"]))
    body = [
        "<h1>U-Net: replace the head, retrain on the same data</h1>",
        f"<p class=note>{esc(prep['note'])}; {prep['frames']} frame(s) of {prep['height']}x{prep['width']} px; "
        f"classes {esc(', '.join(prep['class_names']))}; rows "
        + esc(", ".join(f"{k} {prep['stripes'][k][0]}-{prep['stripes'][k][1] - 1}" for k in ("train", "val", "test")))
        + ". "
        "Pre-trained on the train stripe, head replaced (every skip connection kept), retrained on the same "
        "stripe under each policy; accuracy on the retrained stripe and on the held-out test stripe.</p>",
        verdict_box(worse, numeric, tol),
        "<h2>Policies against the pretrained model</h2>", table(shown, "summary"),
        "<p class=note>summary.csv; Δ = change against the pretrained model in percentage points; mean ± std over "
        "seeds.</p>",
        f"<ul>{policies}</ul>",
        accuracy_chart(numeric, out),
        "<h2>Per-class IoU, test stripe</h2>", table(per_class.round(4), "per_class_iou"),
        "<p class=note>per_class_iou.csv (empty: class neither present nor predicted in the test stripe)</p>",
        "<h2>Learning-rate groups</h2>", table(groups, "lr_groups"),
        "<p class=note>lr_groups.csv: factor 0 = frozen (trainable = False, BatchNorm in inference mode); every "
        "other factor has its own optimizer.</p>",
        "<h2>Runs</h2>", table(runs.round(4), "runs"), "<p class=note>runs.csv</p>",
        "<h2>Prediction maps</h2>", *maps,
    ]
    write_text(out / "index.html", page("rstransfer: U-Net learning-rate factors", body))
    return {"line": f"report: {len(df)} evaluated run(s), "
                    f"{'worse than pretrained: ' + ', '.join(worse) if worse else 'no policy lost accuracy'} "
                    f"-> {ctx.final / 'index.html'}", "worse": worse}
