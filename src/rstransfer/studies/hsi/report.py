"""report: paper-style tables, learning curves, maps and confusion matrices over all runs.

Everything is written as CSV + Markdown, and once more into one self-contained
``index.html`` (images inlined as base64; no network fetches).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rstransfer.core.io import atomic_path, write_text
from rstransfer.core.report import (
    img,
    mean_std,
    page,
    pyplot,
    read_json,
    save_figure,
    table,
    write_tables,
)
from rstransfer.core.study import StepContext


def load_runs(run_dirs: list[Path]) -> list[dict[str, Any]]:
    runs = []
    for d in run_dirs:
        m = read_json(Path(d) / "metrics.json", "rstransfer evaluate --study hsi")
        m["_dir"] = Path(d)
        runs.append(m)
    return runs


def runs_frame(runs: list[dict[str, Any]], policy_order: list[str]) -> pd.DataFrame:
    rows = []
    for m in runs:
        t = m["train"]
        run = t.get("run", {})
        rows.append(
            {
                "policy": m["policy"],
                "seed": m["seed"],
                "OA": m["OA"],
                "AA": m["AA"],
                "Kappa": m["Kappa"],
                "trainable_params": t["trainable_params"],
                "total_params": t["total_params"],
                "train_seconds": t["train_seconds"],
                "seconds_per_epoch": t["seconds_per_epoch"],
                "epochs_run": t["epochs_run"],
                "best_epoch": t["best_epoch"],
                "gpu_hours": t.get("gpu_hours", 0.0),
                "slurm_job_id": run.get("slurm_job_id", "local"),
                "nodelist": run.get("slurm_nodelist", "local"),
                "partition": run.get("slurm_partition", "local"),
                "gpus": run.get("cuda_visible_devices", "local"),
                "world_size": run.get("world_size", 1),
            }
        )
    df = pd.DataFrame(rows)
    order = {p: i for i, p in enumerate(policy_order)}
    df["_order"] = df["policy"].map(lambda p: order.get(p, len(order)))
    return df.sort_values(["_order", "seed"]).drop(columns="_order").reset_index(drop=True)


def table4(df: pd.DataFrame) -> pd.DataFrame:
    """The paper's Table 4 layout: OA / Kappa / AA (%) per policy, mean ± std over seeds."""
    g = df.groupby("policy", sort=False)
    return pd.DataFrame(
        {
            "policy": list(g.groups),
            "OA (%)": [mean_std(x["OA"], 100) for _, x in g],
            "Kappa (%)": [mean_std(x["Kappa"], 100) for _, x in g],
            "AA (%)": [mean_std(x["AA"], 100) for _, x in g],
            "seeds": [len(x) for _, x in g],
        }
    )


def table5(df: pd.DataFrame) -> pd.DataFrame:
    """Table 5: trainable parameters and their ratio to all parameters."""
    g = df.groupby("policy", sort=False).first()
    return pd.DataFrame(
        {
            "policy": g.index,
            "trainable params": g["trainable_params"].astype(int).map("{:,}".format).values,
            "total params": g["total_params"].astype(int).map("{:,}".format).values,
            "ratio (%)": (100 * g["trainable_params"] / g["total_params"]).map("{:.3f}".format).values,
        }
    )


def timing_table(df: pd.DataFrame) -> pd.DataFrame:
    """Cost per policy (mean ± std over seeds), with where each run ran."""
    g = df.groupby("policy", sort=False)
    return pd.DataFrame(
        {
            "policy": list(g.groups),
            "train s": [mean_std(x["train_seconds"], digits=1) for _, x in g],
            "s/epoch": [mean_std(x["seconds_per_epoch"], digits=2) for _, x in g],
            "epochs": [mean_std(x["epochs_run"], digits=1) for _, x in g],
            "epochs to best val": [mean_std(x["best_epoch"], digits=1) for _, x in g],
            "GPU-hours": [mean_std(x["gpu_hours"], digits=4) for _, x in g],
            "trainable params": [f"{int(x['trainable_params'].iloc[0]):,}" for _, x in g],
            "SLURM job ids": [", ".join(map(str, x["slurm_job_id"])) for _, x in g],
            "nodes": [", ".join(sorted(set(map(str, x["nodelist"])))) for _, x in g],
            "partition": [", ".join(sorted(set(map(str, x["partition"])))) for _, x in g],
            "GPUs seen": [", ".join(sorted(set(map(str, x["gpus"])))) for _, x in g],
        }
    )


def plot_cost_accuracy(df: pd.DataFrame, policies: list[str], path: Path) -> str:
    """OA against GPU-hours per policy (mean ± std): the cost/accuracy trade-off.

    Local runs have no GPU-hours; the x axis is then training seconds, and says so.
    """
    plt = pyplot()

    use_gpu = bool((df["gpu_hours"] > 0).any())
    xcol, xlabel = ("gpu_hours", "GPU-hours") if use_gpu else ("train_seconds", "training time (s, local run: no GPU-hours)")
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for policy in policies:
        x = df[df["policy"] == policy]
        ax.errorbar(
            x[xcol].mean(), 100 * x["OA"].mean(),
            xerr=x[xcol].std(ddof=1) if len(x) > 1 else None,
            yerr=100 * x["OA"].std(ddof=1) if len(x) > 1 else None,
            fmt="o", capsize=3, label=policy,
        )
        ax.annotate(policy, (x[xcol].mean(), 100 * x["OA"].mean()), fontsize=7, xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("OA (%) on test pixels")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path, dpi=80)
    return xlabel


def plot_curves(runs: list[dict[str, Any]], policies: list[str], path: Path) -> None:
    plt = pyplot()

    n = len(policies)
    cols = min(4, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False)
    for ax, policy in zip(axes.ravel(), policies, strict=False):
        for m in (r for r in runs if r["policy"] == policy):
            h = pd.DataFrame(m["history"]).apply(pd.to_numeric, errors="coerce")
            ax.plot(h["epoch"], h["accuracy"], "-", label=f"train s{m['seed']}")
            ax.plot(h["epoch"], h["val_accuracy"], "--", label=f"val s{m['seed']}")
        ax.set_title(policy, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_ylim(0, 1)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6)
    for ax in axes.ravel()[n:]:
        ax.set_axis_off()
    fig.tight_layout()
    save_figure(fig, path, dpi=80)


def plot_confusions(runs: list[dict[str, Any]], policies: list[str], path: Path) -> None:
    plt = pyplot()

    first = {p: next(r for r in runs if r["policy"] == p) for p in policies}
    n = len(policies)
    cols = min(4, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.2 * rows), squeeze=False)
    for ax, policy in zip(axes.ravel(), policies, strict=False):
        m = first[policy]
        cm = np.asarray(m["confusion_matrix"], dtype=float)
        norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, int(v), ha="center", va="center", fontsize=6, color="black" if norm[i, j] < 0.6 else "white")
        ax.set_title(f"{policy} (seed {m['seed']})", fontsize=9)
        ax.set_xlabel("predicted", fontsize=7)
        ax.set_ylabel("true", fontsize=7)
        ax.set_xticks(range(cm.shape[0]))
        ax.set_yticks(range(cm.shape[0]))
        ax.tick_params(labelsize=6)
    for ax in axes.ravel()[n:]:
        ax.set_axis_off()
    fig.tight_layout()
    save_figure(fig, path, dpi=80)


MAPS_CSS = "<style>.maps img{width:32%;margin:2px}</style>"


def report_step(ctx: StepContext) -> dict[str, Any]:
    index = build_report(ctx.cfg, [Path(p) for p in ctx.inputs["runs"]], ctx.out, Path(ctx.inputs["pretrain"]))
    return {"line": f"report: {ctx.final / index.name}"}


def build_report(cfg: dict[str, Any], run_dirs: list[Path], out: Path, pretrain_dir: Path | None = None) -> Path:
    pre = read_json(pretrain_dir / "train.json", "rstransfer pretrain --study hsi") if pretrain_dir else None
    runs = load_runs(run_dirs)
    policy_order = cfg["hsi"]["policies"]
    df = runs_frame(runs, policy_order)
    policies = [p for p in policy_order if p in set(df["policy"])]
    out.mkdir(parents=True, exist_ok=True)
    tables = {
        "table4_accuracy": table4(df),
        "table5_parameters": table5(df),
        "timing": timing_table(df),
        "runs": df,
    }
    write_tables(out, tables)
    with atomic_path(out / "summary.tsv") as tmp:
        df.to_csv(tmp, sep="\t", index=False)
    plot_curves(runs, policies, out / "learning_curves.png")
    plot_confusions(runs, policies, out / "confusion_matrices.png")
    plot_cost_accuracy(df, policies, out / "cost_accuracy.png")

    first = runs[0]
    leak = first["leakage"]
    maps = "".join(img(next(r for r in runs if r["policy"] == p)["_dir"] / "map.png", f"map {p}") for p in policies)
    parts = [
        MAPS_CSS,
        f"<h1>rstransfer: {html.escape(cfg['hsi']['source'])} → {html.escape(cfg['hsi']['target'])} "
        f"({html.escape(cfg['hsi']['model'])})</h1>",
        f"<p class=note>Team <b>{html.escape(cfg['team'])}</b>. Split protocol <b>{html.escape(first['split'])}</b>; "
        f"test pixels with a training pixel in their {leak['window']}×{leak['window']} window: "
        f"<b>{leak['test_pixels_with_train_in_window']}</b> of {leak['test_pixels']}. "
        "Models are selected on validation pixels; test pixels are used only here. "
        f"Mean ± std over {df['seed'].nunique()} seed(s).</p>",
    ]
    if pre:
        parts.append(
            f"<p class=note>Pre-training on {html.escape(pre['dataset'])}: {pre['epochs_run']} epochs, "
            f"{pre['train_seconds']:.1f} s, best epoch {pre['best_epoch']}.</p>"
        )
    parts += [
        "<h2>Accuracy (Table 4 layout)</h2>", table(tables["table4_accuracy"], "table4"),
        "<h2>Trainable parameters (Table 5)</h2>", table(tables["table5_parameters"], "table5"),
        "<h2>Training time</h2>", table(tables["timing"], "timing"),
        "<h2>Accuracy vs cost</h2>", img(out / "cost_accuracy.png", "accuracy vs GPU-hours"),
        "<h2>Learning curves</h2>", img(out / "learning_curves.png", "learning curves"),
        "<h2>Classification maps</h2>", f"<div class=maps>{maps}</div>",
        "<h2>Confusion matrices (test pixels)</h2>", img(out / "confusion_matrices.png", "confusion matrices"),
        "<h2>All runs</h2>", table(df, "runs"),
    ]
    index = out / "index.html"
    write_text(index, page("rstransfer HSI report", parts))
    return index
