"""Step report: one self-contained page (``index.html``) over every evaluated AL job, with a CSV
beside every table and plot.

* ``f1_vs_labels``: micro- and macro-F1 vs number of labels (mean ± std over runs), one line
  per strategy, one panel per scenario;
* ``f1_at_labels``: F1 at the ``report.label_points`` (the paper: 180 and 220 labels);
* ``label_efficiency``: labels each strategy needs to reach random's best mean F1 of the scenario;
* ``minority_f1``: per-label F1 of the drawn minority labels at the last round;
* ``gains``: macro-F1 gain (points) of every strategy over random at each label point and at the
  budget (the paper: +1.6 in scenario 1, +4 in scenario 3);
* ``byol_loss``: the pre-training loss per epoch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rstransfer.core.io import write_text
from rstransfer.core.report import esc, figure, mean_std, page, pyplot, read_json, save_figure, table, write_tables
from rstransfer.core.study import StepContext

METRICS = (("micro_f1", "micro-F1"), ("macro_f1", "macro-F1"))


def load_runs(folders: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """One row per (strategy, scenario, run, round); the label names."""
    rows, names = [], []
    for folder in folders:
        m = read_json(Path(folder) / "metrics.json", "rstransfer evaluate --study multilabel")
        names = m["label_names"]
        for r in m["rounds"]:
            rows.append({"strategy": m["strategy"], "scenario": int(m["scenario"]), "run": int(m["run"]),
                         **{k: v for k, v in r.items() if k not in ("per_label_f1", "support")},
                         **{f"f1:{n}": v for n, v in zip(names, r["per_label_f1"], strict=True)}})
    return pd.DataFrame(rows), names


def curves(df: pd.DataFrame) -> pd.DataFrame:
    g = df.groupby(["scenario", "strategy", "n_labelled"])
    out = g[["micro_f1", "macro_f1"]].agg(["mean", "std"])
    out.columns = [f"{a}_{b}" for a, b in out.columns]
    out["runs"] = g.size()
    return out.reset_index()


def at_points(df: pd.DataFrame, points: list[int]) -> pd.DataFrame:
    rows = []
    for (scenario, strategy), d in df.groupby(["scenario", "strategy"]):
        sizes = sorted(d["n_labelled"].unique())
        for n in [*points, sizes[-1]]:
            below = [s for s in sizes if s <= n]
            if not below:
                continue
            at = d[d["n_labelled"] == below[-1]]
            rows.append({"scenario": scenario, "strategy": strategy, "labels": n, "round_labels": below[-1],
                         "micro_f1": mean_std(at["micro_f1"], 100), "macro_f1": mean_std(at["macro_f1"], 100),
                         "micro_mean": at["micro_f1"].mean() * 100, "macro_mean": at["macro_f1"].mean() * 100})
    return pd.DataFrame(rows).drop_duplicates(["scenario", "strategy", "labels"])


def label_efficiency(curve: pd.DataFrame) -> pd.DataFrame:
    """Labels each strategy needs to reach random's best mean F1 (per scenario and metric)."""
    rows = []
    for scenario, c in curve.groupby("scenario"):
        rnd = c[c["strategy"] == "random"]
        if rnd.empty:
            continue
        for strategy, s in c.groupby("strategy"):
            row: dict[str, Any] = {"scenario": scenario, "strategy": strategy}
            for key, label in METRICS:
                target = rnd[f"{key}_mean"].max()
                reached = s[s[f"{key}_mean"] >= target - 1e-12]["n_labelled"]
                need = int(reached.min()) if len(reached) else None
                rnd_need = int(rnd[rnd[f"{key}_mean"] >= target - 1e-12]["n_labelled"].min())
                row[f"random best {label}"] = round(100 * target, 2)
                row[f"labels to reach ({label})"] = need if need is not None else f"> {int(s['n_labelled'].max())}"
                row[f"labels saved vs random ({label})"] = rnd_need - need if need is not None else None
            rows.append(row)
    return pd.DataFrame(rows)


def minority_f1(df: pd.DataFrame, minority: list[str]) -> pd.DataFrame:
    rows = []
    for (scenario, strategy), d in df.groupby(["scenario", "strategy"]):
        last = d[d["n_labelled"] == d["n_labelled"].max()]
        rows.append({"scenario": scenario, "strategy": strategy, "labels": int(last["n_labelled"].iloc[0]),
                     **{name: mean_std(last[f"f1:{name}"], 100) for name in minority}})
    return pd.DataFrame(rows)


def gains(points: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (scenario, labels), d in points.groupby(["scenario", "labels"]):
        rnd = d[d["strategy"] == "random"]
        if rnd.empty:
            continue
        for _, row in d[d["strategy"] != "random"].iterrows():
            rows.append({"scenario": scenario, "labels": labels, "strategy": row["strategy"],
                         "macro-F1 gain (points)": round(row["macro_mean"] - rnd["macro_mean"].iloc[0], 2),
                         "micro-F1 gain (points)": round(row["micro_mean"] - rnd["micro_mean"].iloc[0], 2)})
    return pd.DataFrame(rows, columns=["scenario", "labels", "strategy", "macro-F1 gain (points)", "micro-F1 gain (points)"])


def plot_curves(curve: pd.DataFrame, path: Path) -> None:
    plt = pyplot()
    scenarios = sorted(curve["scenario"].unique())
    fig, axes = plt.subplots(2, len(scenarios), figsize=(4.2 * len(scenarios), 6.4), squeeze=False)
    for j, scenario in enumerate(scenarios):
        for i, (key, label) in enumerate(METRICS):
            ax = axes[i][j]
            for strategy, c in curve[curve["scenario"] == scenario].groupby("strategy"):
                m, s = 100 * c[f"{key}_mean"].to_numpy(), 100 * np.nan_to_num(c[f"{key}_std"].to_numpy())
                ax.plot(c["n_labelled"], m, marker="o", ms=3, label=strategy)
                ax.fill_between(c["n_labelled"], m - s, m + s, alpha=0.2)
            ax.set_title(f"scenario {scenario}: {label}")
            ax.set_xlabel("labelled samples")
            ax.set_ylabel(f"{label} (%)")
            ax.grid(alpha=0.3)
    axes[0][0].legend()
    fig.tight_layout()
    save_figure(fig, path)


def plot_byol(history: pd.DataFrame, path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    ax.plot(history["epoch"], history["loss"], marker="o", ms=3)
    ax.set_xlabel("epoch")
    ax.set_ylabel("BYOL loss")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)


def report_step(ctx: StepContext) -> dict[str, Any]:
    out, section = ctx.out, ctx.section
    df, _ = load_runs(ctx.inputs["runs"])
    scenarios = read_json(Path(ctx.inputs["data"]) / "scenarios.json", "rstransfer prepare --study multilabel")
    minority = next((v["minority"] for v in scenarios.values() if v["minority"]), [])
    curve = curves(df)
    points = at_points(df, section["report"]["label_points"])
    tables = {
        "f1_vs_labels": curve,
        "f1_at_labels": points.drop(columns=["micro_mean", "macro_mean"]),
        "label_efficiency": label_efficiency(curve),
        "minority_f1": minority_f1(df, minority),
        "gains": gains(points),
    }
    history_path = Path(ctx.inputs["pretrain"]) / "history.csv"
    history = pd.read_csv(history_path) if history_path.is_file() else pd.DataFrame(columns=["epoch", "loss"])
    tables["byol_loss"] = history[[c for c in ("epoch", "loss", "seconds") if c in history]]
    write_tables(out, tables)
    plot_curves(curve, out / "f1_vs_labels.png")
    figures = [figure(out / "f1_vs_labels.png", "micro- and macro-F1 vs labelled samples (mean ± std over runs)")]
    if len(history):
        plot_byol(history, out / "byol_loss.png")
        figures.append(figure(out / "byol_loss.png", "BYOL pre-training loss"))
    runs = df.groupby(["scenario", "strategy"])["run"].nunique().to_dict()
    body = [
        "<h1>Multi-label scene classification: BYOL + active learning</h1>",
        f"<p class=note>Möllenbrok &amp; Demir (IGARSS 2023) protocol on <b>{esc(section['dataset'])}</b> "
        f"({section['image_size']} px, backbone blocks {esc(section['backbone']['blocks'])}); strategies "
        f"{esc(', '.join(section['active']['strategies']))}; {esc(len(df))} evaluated rounds from "
        f"{esc(sum(runs.values()))} jobs. Minority labels of scenarios 2+: {esc(', '.join(minority) or 'none')}. "
        "Paper at 180 labels (scenario 1): AL 81.74 micro / 81.8 macro, random 80.39 / 79.8.</p>",
        *figures,
        "<h2>F1 at N labels (%)</h2>", table(tables["f1_at_labels"], "f1_at_labels"),
        "<h2>Label efficiency</h2><p class=note>Labels each strategy needs to reach random's best mean F1.</p>",
        table(tables["label_efficiency"], "label_efficiency"),
        "<h2>Minority-label F1 at the last round (%)</h2>", table(tables["minority_f1"], "minority_f1"),
        "<h2>Macro-F1 gain over random</h2>", table(tables["gains"], "gains"),
        "<h2>F1 vs labels (data of the plot)</h2>", table(curve.round(4), "f1_vs_labels"),
    ]
    write_text(out / "index.html", page("multilabel report", body))
    best = curve.loc[curve["macro_f1_mean"].idxmax()]
    return {"jobs": int(sum(runs.values())),
            "line": f"multilabel report: {int(sum(runs.values()))} jobs; best mean macro-F1 {100 * best['macro_f1_mean']:.2f} "
                    f"({best['strategy']}, scenario {best['scenario']}, {best['n_labelled']} labels)"}
