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


def plot_curves(runs: list[dict[str, Any]], policies: list[str], path: Path,
                pretrain: tuple[str, list[dict[str, Any]]] | None = None) -> None:
    """Accuracy and loss per epoch (train solid, val dashed), side by side for each policy, the
    pre-training on the source first."""
    plt = pyplot()

    panels = ([pretrain] if pretrain else []) + [
        (policy, [(f"s{m['seed']}", m["history"]) for m in runs if m["policy"] == policy]) for policy in policies
    ]
    pairs = min(2, len(panels))
    rows = (len(panels) + pairs - 1) // pairs
    fig, axes = plt.subplots(rows, 2 * pairs, figsize=(3.3 * 2 * pairs, 2.6 * rows), squeeze=False)
    for n, (title, histories) in enumerate(panels):
        acc_ax, loss_ax = axes[n // pairs, 2 * (n % pairs)], axes[n // pairs, 2 * (n % pairs) + 1]
        for label, history in histories:
            if not history:
                continue
            h = pd.DataFrame(history).apply(pd.to_numeric, errors="coerce")
            for ax, metric in ((acc_ax, "accuracy"), (loss_ax, "loss")):
                ax.plot(h["epoch"], h[metric], ".-", label=f"train {label}")
                ax.plot(h["epoch"], h[f"val_{metric}"], ".--", label=f"val {label}")
        acc_ax.set_ylim(0, 1)
        for ax, metric in ((acc_ax, "accuracy"), (loss_ax, "loss")):
            ax.set_title(f"{title}: {metric}", fontsize=9)
            ax.set_xlabel("epoch", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.legend(fontsize=6)
    for ax in axes.ravel()[2 * len(panels):]:
        ax.set_axis_off()
    fig.tight_layout()
    save_figure(fig, path, dpi=80)


def _pct(part: Any, whole: Any) -> str:
    return f"{part} ({100 * part / whole:.1f} %)" if isinstance(part, int) and whole else str(part)


def leakage_table(test_sets: list[tuple[str, dict[str, Any]]]) -> pd.DataFrame:
    """Per test set: what the buffer cost and the leakage figures from the window footprints."""
    rows = []
    for role, m in test_sets:
        leak, buf = m["leakage"], m.get("buffer") or {}
        removed = "; ".join(f"{c['name']} (none in {'/'.join(c['missing_from'])})" for c in buf.get("classes_removed", []))
        rows.append({
            "test set": f"{role}: {m['dataset']}",
            "split": f"{m['split']}, buffer {buf.get('buffer', 'n/a')}",
            "labelled px dropped": _pct(buf.get("dropped_pixels", "n/a"), buf.get("labelled_pixels")),
            "test px": leak["test_pixels"],
            "px in train and test windows": leak.get("shared_pixels_train_test", "n/a"),
            "test windows with a training centre": _pct(leak["test_pixels_with_train_in_window"], leak["test_pixels"]),
            "classes removed by the buffer": removed or "none",
        })
    return pd.DataFrame(rows)


def source_table(src: dict[str, Any], pre: dict[str, Any], reference: dict[str, Any]) -> pd.DataFrame:
    """The pre-trained model on the source scene's own test pixels (and the paper's figures)."""
    rows = [{"model": f"pre-trained on {src['dataset']} ({pre['epochs_run']} epochs)", "test px": src["n_test"],
             "OA (%)": f"{100 * src['OA']:.2f}", "Kappa (%)": f"{100 * src['Kappa']:.2f}", "AA (%)": f"{100 * src['AA']:.2f}"}]
    given = {k: reference.get(k) for k in ("OA", "Kappa", "AA")}
    if any(v is not None for v in given.values()):
        rows.append({"model": reference.get("label") or "reference", "test px": "",
                     **{f"{k} (%)": "" if v is None else f"{v:.2f}" for k, v in given.items()}})
    return pd.DataFrame(rows)


ENV_ITEMS = {"node": "node", "slurm_nodelist": "SLURM nodes", "gpu_model": "GPU", "gpus_visible": "GPUs visible",
             "world_size": "ranks", "cpu_model": "CPU", "cpus": "CPU cores", "os": "OS", "python": "Python",
             "tensorflow": "TensorFlow", "keras": "Keras", "horovod": "Horovod", "cuda": "CUDA (TF build)"}


def environment_table(records: list[tuple[str, dict[str, Any]]]) -> pd.DataFrame:
    """The paper's Table 3 layout: one column per distinct environment the jobs ran in."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for label, t in records:
        env = {**(t.get("environment") or {}), "world_size": t.get("world_size", 1),
               "slurm_nodelist": t.get("run", {}).get("slurm_nodelist", "local")}
        groups.setdefault(tuple(str(env.get(k, "n/a")) for k in ENV_ITEMS), []).append(label)
    data: dict[str, list[str]] = {"item": ["runs", *ENV_ITEMS.values()]}
    for n, (values, labels) in enumerate(groups.items(), start=1):
        data[f"environment {n}"] = [", ".join(labels), *values]
    return pd.DataFrame(data)


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


def _history(folder: Path) -> list[dict[str, str]]:
    import csv
    import io

    path = folder / "history.csv"
    return list(csv.DictReader(io.StringIO(path.read_text()))) if path.is_file() else []


def build_report(cfg: dict[str, Any], run_dirs: list[Path], out: Path, pretrain_dir: Path | None = None) -> Path:
    from .evaluate import SOURCE_FILE

    pre = read_json(pretrain_dir / "train.json", "rstransfer pretrain --study hsi") if pretrain_dir else None
    src = read_json(pretrain_dir / SOURCE_FILE, "rstransfer pretrain --study hsi") if pre else None
    runs = load_runs(run_dirs)
    policy_order = cfg["hsi"]["policies"]
    df = runs_frame(runs, policy_order)
    policies = [p for p in policy_order if p in set(df["policy"])]
    out.mkdir(parents=True, exist_ok=True)
    first = runs[0]
    test_sets = [("target", first)] + ([("source (pre-training)", src)] if src else [])
    env_runs = ([("pretrain", pre)] if pre else []) + [(f"{m['policy']} s{m['seed']}", m["train"]) for m in runs]
    tables = {
        "table4_accuracy": table4(df),
        "leakage": leakage_table(test_sets),
        "table5_parameters": table5(df),
        "timing": timing_table(df),
        "environment": environment_table(env_runs),
        "runs": df,
    }
    if src:
        tables["source_model"] = source_table(src, pre, cfg["hsi"]["report"]["source_reference"])
    write_tables(out, tables)
    with atomic_path(out / "summary.tsv") as tmp:
        df.to_csv(tmp, sep="\t", index=False)
    pre_curves = (f"pretrain ({pre['dataset']})", [("", _history(pretrain_dir))]) if pre and pretrain_dir else None
    plot_curves(runs, policies, out / "learning_curves.png", pre_curves)
    plot_confusions(runs, policies, out / "confusion_matrices.png")
    plot_cost_accuracy(df, policies, out / "cost_accuracy.png")

    leak = first["leakage"]
    maps = "".join(img(next(r for r in runs if r["policy"] == p)["_dir"] / "map.png", f"map {p}") for p in policies)
    parts = [
        MAPS_CSS,
        f"<h1>rstransfer: {html.escape(cfg['hsi']['source'])} → {html.escape(cfg['hsi']['target'])} "
        f"({html.escape(cfg['hsi']['model'])})</h1>",
        f"<p class=note>Team <b>{html.escape(cfg['team'])}</b>. Split protocol <b>{html.escape(first['split'])}</b>; "
        f"test pixels with a training pixel in their {leak['window']}×{leak['window']} window: "
        f"<b>{leak['test_pixels_with_train_in_window']}</b> of {leak['test_pixels']}; pixels inside both a training "
        f"and a test window: <b>{leak.get('shared_pixels_train_test', 'n/a')}</b>. "
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
        "<p class=note>Leakage, from the window footprints of each split (not from the rule that built it):</p>",
        table(tables["leakage"], "leakage"),
    ]
    if src:
        parts += ["<h2>Source model on its own test pixels</h2>", table(tables["source_model"], "source_model")]
    parts += [
        "<h2>Trainable parameters (Table 5)</h2>", table(tables["table5_parameters"], "table5"),
        "<h2>Training time</h2>", table(tables["timing"], "timing"),
        "<h2>Environment (Table 3 layout)</h2>", table(tables["environment"], "environment"),
        "<h2>Accuracy vs cost</h2>", img(out / "cost_accuracy.png", "accuracy vs GPU-hours"),
        "<h2>Learning curves</h2>", img(out / "learning_curves.png", "learning curves: accuracy and loss"),
        "<h2>Classification maps</h2>", f"<div class=maps>{maps}</div>",
        "<h2>Confusion matrices (test pixels)</h2>", img(out / "confusion_matrices.png", "confusion matrices"),
        "<h2>All runs</h2>", table(df, "runs"),
    ]
    index = out / "index.html"
    write_text(index, page("rstransfer HSI report", parts))
    return index
