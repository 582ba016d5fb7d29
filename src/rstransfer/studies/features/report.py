"""report: method x accuracy x fit / inference time (mean +- std over seeds), the linear probe of
every pretrained backbone, the HybridSN fine-tuning policies beside the pixel-wise baselines,
and a 2-D feature-space figure per dataset. Every table and figure has a CSV beside it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rstransfer.core.io import write_text
from rstransfer.core.report import esc, figure, mean_std, page, pyplot, read_json, save_figure, table, write_tables
from rstransfer.core.study import StepContext

from . import domain
from .extract import EXTRACTORS, FEATURES_FILE, read_features
from .classifiers import CLASSIFIERS, PROBE

SINGLE = ("OA", "AA", "Kappa")
MULTI = ("F1_micro", "F1_macro", "F1_samples")
MADE_BY = "rstransfer evaluate --study features"


def per_seed_frame(run_dirs: list[str]) -> Any:
    """One row per (run, seed) from every evaluate folder."""
    import pandas as pd

    rows = []
    for d in run_dirs:
        m = read_json(Path(d) / "metrics.json", MADE_BY)
        for r in m["per_seed"]:
            rows.append({k: m[k] for k in ("dataset", "task", "extractor", "classifier")}
                        | {k: r.get(k) for k in (*SINGLE, *MULTI, "seed", "n_train", "n_val", "n_test", "fit_seconds",
                                                 "search_seconds", "predict_ms_per_item", "val_score")}
                        | {"extract_ms_per_item": m["extract_ms_per_item"], "width": m["width"],
                           "params": str(r["params"])})
    return pd.DataFrame(rows)


def policy_frame(run_dirs: list[str]) -> Any:
    """The HSI study's fine-tuned HybridSN runs as rows of the pixel-wise table."""
    import pandas as pd

    rows = []
    for d in run_dirs:
        m = read_json(Path(d) / "metrics.json", "rstransfer evaluate --study hsi")
        pps = m.get("map_pixels_per_second")
        rows.append({"dataset": "hsi", "task": "single", "extractor": "hybridsn (fine-tuned)",
                     "classifier": f"policy {m.get('policy')}", "seed": m.get("seed"),
                     **{k: m.get(k) for k in SINGLE}, "n_test": m.get("n_test"),
                     "fit_seconds": m.get("train", {}).get("train_seconds"),
                     "n_train": m.get("train", {}).get("n_train"),
                     "predict_ms_per_item": 1000 / pps if pps else None, "extract_ms_per_item": None})
    return pd.DataFrame(rows)


def summary_table(df: Any, metrics: tuple[str, ...]) -> Any:
    """Mean +- std (percent) per method; times as means."""
    import pandas as pd

    out = []
    for (dataset, extractor, classifier), g in df.groupby(["dataset", "extractor", "classifier"], sort=False):
        title = EXTRACTORS[extractor].title if extractor in EXTRACTORS else extractor
        name = CLASSIFIERS[classifier].title if classifier in CLASSIFIERS else classifier
        row = {"dataset": dataset, "features": title, "classifier": name}
        row |= {m: mean_std(g[m], scale=100) for m in metrics}
        row |= {"fit s": f"{g['fit_seconds'].astype(float).mean():.3g}",
                "search s": f"{g['search_seconds'].astype(float).mean():.3g}" if "search_seconds" in g else "",
                "extract ms/item": f"{g['extract_ms_per_item'].astype(float).mean():.3g}",
                "predict ms/item": f"{g['predict_ms_per_item'].astype(float).mean():.3g}",
                "n train": int(g["n_train"].iloc[0]) if g["n_train"].notna().all() else "",
                "n test": int(g["n_test"].iloc[0]), "seeds": len(g)}
        out.append(row)
    return pd.DataFrame(out).replace("nan", "")


def probe_table(df: Any) -> Any:
    """Linear probe (linear SVM on frozen features) of every pretrained backbone, the random floor beside it."""
    import pandas as pd

    rows = []
    keep = df[(df["classifier"] == PROBE) & df["extractor"].isin([e for e in EXTRACTORS if EXTRACTORS[e].probe])]
    for (dataset, task, extractor), g in keep.groupby(["dataset", "task", "extractor"], sort=False):
        key = "F1_micro" if task == "multi" else "OA"
        rows.append({"dataset": dataset, "task": task, "backbone": EXTRACTORS[extractor].title,
                     "pretrained": EXTRACTORS[extractor].pretrained, "metric": key,
                     "linear probe (%)": mean_std(g[key], scale=100)})
    return pd.DataFrame(rows, columns=["dataset", "task", "backbone", "pretrained", "metric", "linear probe (%)"])


def feature_space(out: Path, dataset: str, feature_dirs: list[str], section: dict[str, Any]) -> tuple[Path, Any] | None:
    """2-D projection of each extractor's training rows (fitted on those rows alone), coloured by class."""
    import pandas as pd
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from sklearn.preprocessing import StandardScaler

    from .steps import row_split

    dirs = [d for d in feature_dirs if Path(d).parent.name == dataset]
    if not dirs:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, len(dirs), figsize=(3.6 * len(dirs), 3.6), squeeze=False)
    frames = []
    seed = section["seeds"][0]
    for ax, d in zip(axes[0], dirs, strict=True):
        feats = read_features(Path(d) / FEATURES_FILE)
        split = row_split(feats, seed, section)
        rows = np.flatnonzero(split == 1)  # TRAIN
        rows = np.random.default_rng(seed).permutation(rows)[: section["figure_points"]]
        x = StandardScaler().fit_transform(feats.x[rows])
        if section["projection"] == "tsne" and len(rows) > 5:
            xy = TSNE(2, perplexity=min(30.0, (len(rows) - 1) / 3), random_state=seed, init="pca").fit_transform(x)
        else:
            xy = PCA(2, random_state=seed).fit_transform(x) if min(x.shape) >= 2 else np.c_[x[:, :1], 0 * x[:, :1]]
        y = feats.arrays["class_ids"][rows]
        ax.scatter(xy[:, 0], xy[:, 1], c=y, cmap="tab20" if y.max() >= 10 else "tab10", s=6)
        name = Path(d).name
        ax.set_title(EXTRACTORS[name].title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        frames.append(pd.DataFrame({"extractor": name, "row": rows, "class_id": y, "x": xy[:, 0], "y": xy[:, 1]}))
    fig.suptitle(f"{dataset}: training features, {section['projection'].upper()} (colour = class)", fontsize=10)
    fig.tight_layout()
    path = out / f"features_{dataset}.png"
    save_figure(fig, path)
    return path, pd.concat(frames, ignore_index=True)


def report_step(ctx: StepContext) -> dict[str, Any]:
    import pandas as pd

    section = ctx.section
    df = per_seed_frame(ctx.inputs["runs"])
    policies = policy_frame(ctx.inputs.get("policies", []))
    tables: dict[str, Any] = {"per_seed": pd.concat([df, policies], ignore_index=True)}
    body = ["<h1>Pretrained features + SVM / random forest</h1>",
            "<p class=note>Features from frozen extractors, classifiers picked by a validation search (fitted on the "
            "training rows, scored on the validation rows, the best kept without refitting); test rows are "
            "scored once. Scene-wise: a stratified split per seed. Pixel-wise (hsi): the HSI study's spatially "
            "disjoint split of its target scene, so seeds only change the classifier; the fine-tuned HybridSN "
            "policies of that study sit in the same table. Percentages are mean &plusmn; std over seeds; times are "
            "per fit (selected grid point) and per item. Rows on the synthetic scene set are a stand-in, not UC "
            "Merced.</p>"]
    sections = [("scene_single", "Scene-wise, single label", lambda d: (d["task"] == "single") & (d["dataset"] != "hsi"),
                 SINGLE),
                ("scene_multi", "Scene-wise, multi-label (one-vs-rest)", lambda d: d["task"] == "multi", MULTI),
                ("pixel", "Pixel-wise (hyperspectral)", lambda d: d["dataset"] == "hsi", SINGLE)]
    for key, title, select, metrics in sections:
        part = df[select(df)] if len(df) else df
        if key == "pixel" and len(policies):
            part = pd.concat([part, policies], ignore_index=True)
        if len(part) == 0:
            continue
        tables[key] = summary_table(part, metrics)
        body += [f"<h2>{esc(title)}</h2>", table(tables[key], key), f"<p class=note>CSV: {key}.csv</p>"]
    tables["linear_probe"] = probe_table(df)
    body += ["<h2>Linear probe per backbone</h2>",
             "<p class=note>A linear SVM on the frozen features of every pretrained backbone (and the randomly "
             "initialised DenseNet as the floor): a cheap measure of how well each transfers.</p>",
             table(tables["linear_probe"], "linear_probe")]
    body.append("<h2>Feature space</h2>")
    for dataset in dict.fromkeys(Path(d).parent.name for d in ctx.inputs["features"]):
        made = feature_space(ctx.out, dataset, ctx.inputs["features"], section)
        if made is not None:
            path, coords = made
            tables[f"features_{dataset}"] = coords
            body.append(figure(path, f"{dataset} ({domain(dataset)}-wise); coordinates in features_{dataset}.csv"))
    write_tables(ctx.out, tables, markdown=False)
    for key in ("scene_single", "scene_multi", "pixel", "linear_probe"):
        if key in tables:
            write_text(ctx.out / f"{key}.md", tables[key].to_markdown(index=False) + "\n")
    write_text(ctx.out / "index.html", page("features study", body))
    return {"line": f"features report: {len(df)} (run, seed) rows, {len(policies)} policy rows -> index.html"}
