"""rstransfer: transfer learning for remote-sensing images; one subcommand per DAG step.

The subcommands are called by the Snakemake rules,
the jobs/ sbatch scripts and the tests alike (one code path).

Errors in input or config end as one line ``rstransfer: error: ...`` and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .errors import RSTransferError


class UsageError(RSTransferError):
    """Wrong combination of command-line options."""


def _config(args: argparse.Namespace) -> dict[str, Any]:
    from .config import load_config

    return load_config(args.config or ["config.yaml"])


def _layout(cfg: dict[str, Any]) -> Any:
    from .paths import Layout

    return Layout.from_config(cfg)


def cmd_prepare(args: argparse.Namespace) -> None:
    from .data.prepare import prepare_scene
    from .data.readers import load_dataset
    from .errors import ConfigError

    cfg = _config(args)
    datasets = [args.dataset] if args.dataset else list(dict.fromkeys([cfg["hsi"]["source"], cfg["hsi"]["target"]]))
    if args.out and len(datasets) > 1:
        raise UsageError("prepare: --out needs --dataset")
    for key in datasets:
        if key not in cfg["datasets"]:
            raise ConfigError(f"--dataset: unknown dataset {key!r} (declared: {sorted(cfg['datasets'])})")
        out = args.out or _layout(cfg).prepared(key)
        scene = load_dataset(key, cfg["datasets"][key], Path(cfg.get("data_root", ".")))
        summary = prepare_scene(scene, cfg, Path(out), origin=key)
        leak = summary["leakage"]
        print(
            f"prepared {key}: {summary['shape']} -> {out}; "
            f"split {summary['split']['protocol']}, leakage {leak['test_pixels_with_train_in_window']}"
            f"/{leak['test_pixels']} test px"
        )


def cmd_pretrain(args: argparse.Namespace) -> None:
    from .train import pretrain

    cfg = _config(args)
    layout = _layout(cfg)
    args.data = args.data or layout.prepared(layout.source)
    args.out = args.out or layout.pretrain_dir()
    summary = pretrain(cfg, Path(args.data), Path(args.out), threads=args.threads)
    if summary["is_root"]:
        print(f"pretrained: {summary['epochs_run']} epochs, {summary['train_seconds']:.1f} s -> {args.out}")


def cmd_finetune(args: argparse.Namespace) -> None:
    from .train import finetune

    from .policies import get_policy

    cfg = _config(args)
    layout = _layout(cfg)
    args.data = args.data or layout.prepared(layout.target)
    if args.pretrained is None and not get_policy(args.policy).from_scratch:
        args.pretrained = layout.pretrain_dir(file="model.keras")
    args.out = args.out or layout.finetune_dir(args.policy, args.seed)
    pretrained = Path(args.pretrained) if args.pretrained else None
    summary = finetune(cfg, Path(args.data), pretrained, args.policy, args.seed, Path(args.out), args.threads)
    if summary["is_root"]:
        print(
            f"finetuned {args.policy} seed {args.seed}: {summary['trainable_params']} trainable params, "
            f"{summary['epochs_run']} epochs, {summary['train_seconds']:.1f} s -> {args.out}"
        )


def cmd_evaluate(args: argparse.Namespace) -> None:
    from .evaluate import evaluate

    cfg = _config(args)
    layout = _layout(cfg)
    if args.run is None or args.out is None:
        if args.policy is None or args.seed is None:
            raise UsageError("evaluate: give --run and --out, or --policy and --seed")
    args.data = args.data or layout.prepared(layout.target)
    args.run = args.run or layout.finetune_dir(args.policy, args.seed)
    args.out = args.out or layout.evaluate_dir(args.policy, args.seed)
    m = evaluate(cfg, Path(args.data), Path(args.run), Path(args.out), threads=args.threads)
    print(f"evaluated {m['policy']} seed {m['seed']}: OA {m['OA']:.4f} AA {m['AA']:.4f} Kappa {m['Kappa']:.4f}")


def cmd_report(args: argparse.Namespace) -> None:
    from .report import build_report

    cfg = _config(args)
    layout = _layout(cfg)
    runs = args.runs or [layout.evaluate_dir(p, s) for p in cfg["hsi"]["policies"] for s in cfg["hsi"]["seeds"]]
    pretrain_dir = args.pretrain or layout.pretrain_dir()
    out = args.out or layout.report_dir()
    index = build_report(cfg, [Path(p) for p in runs], Path(out), pretrain_dir=Path(pretrain_dir))
    print(f"report: {index}")


def cmd_policies(args: argparse.Namespace) -> None:
    from .policies import policy_table

    rows = policy_table(args.model, (args.window, args.window, args.bands, 1), args.classes)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{args.model}: input {args.window}x{args.window}x{args.bands}x1, {args.classes} classes")
    print(f"{'policy':<10} {'trainable params':>16} {'total params':>13} {'ratio':>9}  trainable layers")
    for r in rows:
        print(
            f"{r['policy']:<10} {r['trainable_params']:>16,} {r['total_params']:>13,} "
            f"{100 * r['trainable_ratio']:>8.3f}%  {r['trainable_layers']}"
        )


def cmd_download(args: argparse.Namespace) -> None:
    from .data.readers import download
    from .errors import ConfigError

    cfg = _config(args)
    entry = cfg["datasets"].get(args.dataset)
    if entry is None:
        raise ConfigError(f"--dataset: unknown dataset {args.dataset!r}")
    print(download(entry, Path(cfg.get("data_root", ".")) / entry["path"]))


def cmd_launch(args: argparse.Namespace) -> None:
    from .launch import launch

    raise SystemExit(launch(args.config or ["config.yaml"], args.command_args, dry_run=args.dry_run))


def cmd_config(args: argparse.Namespace) -> None:
    import yaml

    print(yaml.safe_dump(_config(args), sort_keys=True), end="")


def cmd_submit(args: argparse.Namespace) -> None:
    from .io import write_json
    from .leaderboard import active_tasks, submit

    cfg = _config(args)
    layout = _layout(cfg)
    tasks = [args.task] if args.task else active_tasks(cfg)
    if (args.out or args.runs) and len(tasks) != 1:
        raise UsageError("submit: --out and --runs need --task")
    for task in tasks:
        s = submit(cfg, task, layout, team=args.team, runs=args.runs)
        r = s["receipt"]
        write_json(args.out or layout.submit_receipt(task), r)
        print(f"submitted {r['team']}/{task}: {len(r['submissions'])} run(s), {s['new']} new -> {s['folder']}")


def cmd_leaderboard(args: argparse.Namespace) -> None:
    from .leaderboard import build

    # an organiser may give --dir alone (no config.yaml where the shared folder is)
    cfg = _config(args) if args.config or not args.dir else None
    root = Path(args.dir) if args.dir else Path(_layout(cfg).leaderboard_file("html")).parent
    title = args.title or (cfg["leaderboard"]["title"] if cfg else "rstransfer leaderboard")
    b = build(root, Path(args.out) if args.out else None, title=title)
    print(f"leaderboard: {b['teams']} team(s), {b['submissions']} submission(s) -> {b['files']['html']}")


def _bool(text: str) -> bool:
    """true/false, any case (the tutorial's True/False)."""
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def cmd_make_vaihingen_demo(args: argparse.Namespace) -> None:
    from .segmentation import make_demo

    cfg = _config(args)
    out = Path(args.out) if args.out else Path(_layout(cfg).seg_synthetic_dir())
    files = make_demo(cfg, out)
    print(f"synthetic Vaihingen tiles (ISPRS format, made-up content): {len(files)} files -> {out}")


def cmd_prepare_vaihingen(args: argparse.Namespace) -> None:
    from .segmentation import prepare

    cfg = _config(args)
    layout = _layout(cfg)
    train_out = Path(args.train_out or layout.seg_prepared("train"))
    val_out = Path(args.val_out or layout.seg_prepared("val"))
    summary = prepare(cfg, train_out, val_out)
    sp = summary["splits"]
    print(
        f"prepared Vaihingen: {sp['train']['patches']} train / {sp['val']['patches']} val patches of "
        f"{summary['patch_size']} px (stride {summary['stride']}, {summary['channels']} channels) -> {train_out}, {val_out}"
    )


def cmd_train_fcn(args: argparse.Namespace) -> None:
    from .segmentation import derived_name, train_fcn

    cfg = _config(args)
    layout = _layout(cfg)
    if args.transfer is not None and args.pretrained is not None:
        raise UsageError("train-fcn: give --pretrained or --transfer, not both")
    pretrained = args.pretrained
    if args.transfer is not None:
        pretrained = "imagenet" if args.transfer else "none"
    # the tutorial's knobs name the run: --transfer/--augment -> imagenet_aug, scratch_noaug, ...
    name = args.experiment or derived_name(args.transfer, args.augment)
    if name is None and args.out is None:
        raise UsageError("train-fcn: give --experiment, --out, or both --transfer and --augment")
    experiment = args.experiment or (name if name in cfg["segmentation"]["experiments"] else None)
    data = Path(args.data or Path(layout.seg_prepared("train")).parent)
    out = Path(args.out or layout.seg_train_dir(name))
    s = train_fcn(
        cfg, data, out, experiment, name=name,
        pretrained=pretrained, augment=args.augment, policy=args.policy, threads=args.threads,
    )
    print(
        f"trained {s['experiment']} (pretrained {s['pretrained']}, augment {s['augment']}, {s['policy']}): "
        f"{s['trainable_params']:,} trainable params, {s['epochs_run']} epochs, {s['train_seconds']:.1f} s -> {out}"
    )


def cmd_evaluate_fcn(args: argparse.Namespace) -> None:
    from .segmentation import WEIGHTS_FILE, evaluate_fcn

    cfg = _config(args)
    layout = _layout(cfg)
    if args.weights is None and args.experiment is None:
        raise UsageError("evaluate-fcn: give --weights or --experiment")
    weights = Path(args.weights or layout.seg_train_dir(args.experiment, file=WEIGHTS_FILE))
    name = args.experiment or weights.parent.name
    out = Path(args.out or layout.seg_evaluate_dir(name, args.tile))
    m = evaluate_fcn(cfg, weights, args.tile, out, experiment=name, threads=args.threads)
    print(
        f"evaluated {m['experiment']} on area {m['tile']}: OA {m['OA']:.4f}, {m['windows']} windows, "
        f"{m['pixels_per_second']:.0f} px/s -> {out}"
    )


def cmd_report_segmentation(args: argparse.Namespace) -> None:
    from .segmentation import build_report, evaluated_runs

    cfg = _config(args)
    runs = args.runs or evaluated_runs(cfg)
    out = args.out or _layout(cfg).seg_report_dir()
    print(f"report: {build_report(cfg, [Path(r) for r in runs], Path(out))}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rstransfer", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace], None], help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=func)
        return p

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--config", action="append", metavar="YAML", help="config file(s), merged in order (default: config.yaml)")
        return p

    def with_threads(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--threads", type=int, default=None, help="TensorFlow intra-op threads")
        return p

    p = with_config(add("prepare", cmd_prepare, "split, scale + PCA (fitted on training pixels), write one HDF5"))
    p.add_argument("--dataset", help="dataset key (default: hsi.source and hsi.target)")
    p.add_argument("--out", help="default: results layout (rstransfer.paths)")

    p = with_threads(with_config(add("pretrain", cmd_pretrain, "train the model from scratch on the source scene")))
    p.add_argument("--data", help="prepared source HDF5 (default: results layout)")
    p.add_argument("--out", help="run folder for model.keras, history.csv, train.json (default: results layout)")

    p = with_threads(with_config(add("finetune", cmd_finetune, "fine-tune on the target scene under one policy")))
    p.add_argument("--data", help="prepared target HDF5 (default: results layout)")
    p.add_argument("--pretrained", help="pretrained model.keras (default: results layout; unused by Original)")
    p.add_argument("--policy", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", help="run folder (default: results layout)")

    p = with_threads(with_config(add("evaluate", cmd_evaluate, "test metrics, confusion matrix and scene map")))
    p.add_argument("--data", help="prepared target HDF5 (default: results layout)")
    p.add_argument("--run", help="finetune run folder (or give --policy and --seed)")
    p.add_argument("--policy")
    p.add_argument("--seed", type=int)
    p.add_argument("--out", help="evaluate folder (default: results layout)")

    p = with_config(add("report", cmd_report, "tables, plots and index.html over all evaluated runs"))
    p.add_argument("--runs", nargs="+", help="evaluate folders (default: every policy x seed in the config)")
    p.add_argument("--pretrain", help="pretrain run folder (default: results layout)")
    p.add_argument("--out", help="report folder (default: results layout)")

    p = add("policies", cmd_policies, "trainable parameters per fine-tuning policy (Table 5)")
    p.add_argument("--model", default="hybridsn")
    p.add_argument("--classes", type=int, required=True)
    p.add_argument("--bands", type=int, required=True, help="components per pixel after PCA")
    p.add_argument("--window", type=int, required=True)
    p.add_argument("--json", action="store_true")

    p = with_config(add("download", cmd_download, "download a dataset declared with url + sha256"))
    p.add_argument("--dataset", required=True)

    p = with_config(
        add("launch", cmd_launch, "run a training step as the config's distribution says (srun / horovodrun / plain)")
    )
    p.add_argument("--dry-run", action="store_true", help="print the command instead of running it")
    p.add_argument("command_args", nargs=argparse.REMAINDER, help="-- SUBCOMMAND [ARGS...]")

    p = with_config(
        add("make-vaihingen-demo", cmd_make_vaihingen_demo, "write the synthetic tile set in the ISPRS Vaihingen format")
    )
    p.add_argument("--out", help="tile-set folder (top/, gts/, dsm/; default: results layout)")

    p = with_config(add("prepare-vaihingen", cmd_prepare_vaihingen, "cut train/val tiles into patches (HDF5)"))
    p.add_argument("--train-out", help="train patch file (default: results layout)")
    p.add_argument("--val-out", help="val patch file (default: results layout)")

    p = with_threads(with_config(add("train-fcn", cmd_train_fcn, "train the ResNet50-FCN for one experiment")))
    p.add_argument("--experiment", help="entry of segmentation.experiments (settings; default out folder)")
    p.add_argument("--data", help="folder of vaihingen_train.hdf5 + vaihingen_val.hdf5 (default: results layout)")
    p.add_argument("--out", help="run folder for weights.h5, history.csv, train.json (default: results layout)")
    p.add_argument("--pretrained", help="override: none, imagenet, run:<experiment> or a weights file")
    p.add_argument("--transfer", type=_bool, metavar="true|false", help="override: true = imagenet, false = none")
    p.add_argument("--augment", type=_bool, metavar="true|false", help="override: rotations + flips")
    p.add_argument("--policy", help="override: fcn_heads, fcn_stage5 or fcn_all")

    p = with_threads(with_config(add("evaluate-fcn", cmd_evaluate_fcn, "predict and score one whole tile")))
    p.add_argument("--tile", type=int, required=True, help="ISPRS area number")
    p.add_argument("--weights", help="weights.h5 of a train-fcn run (default: the experiment's)")
    p.add_argument("--experiment", help="experiment name (default: the weights' folder name)")
    p.add_argument("--out", help="evaluate folder (default: results layout)")

    p = with_config(add("report-segmentation", cmd_report_segmentation, "tables and segmentation.html over evaluated tiles"))
    p.add_argument("--runs", nargs="+", help="evaluate folders (default: every experiment x test tile)")
    p.add_argument("--out", help="report folder (default: results layout)")

    p = with_config(add("submit", cmd_submit, "write the team's evaluated runs as immutable leaderboard submissions"))
    p.add_argument("--task", help="leaderboard task, e.g. hsi (default: every task the config runs)")
    p.add_argument("--team", help="workgroup name (default: the config's team)")
    p.add_argument("--runs", nargs="+", help="evaluate folders (default: every run of the config)")
    p.add_argument("--out", help="receipt JSON (default: results layout)")

    p = with_config(add("leaderboard", cmd_leaderboard, "rank every team's submissions: leaderboard.{csv,md,html}"))
    p.add_argument("--dir", help="folder holding submissions/ (default: the config's leaderboard.dir)")
    p.add_argument("--out", help="folder for the boards (default: --dir)")
    p.add_argument("--title", help="page heading (default: the config's leaderboard.title)")

    with_config(add("config", cmd_config, "print the merged, validated config"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except RSTransferError as exc:
        from .checkpoint import EXIT_RESUMABLE, TrainingInterrupted

        print(f"rstransfer: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_RESUMABLE if isinstance(exc, TrainingInterrupted) else 2
    except KeyError as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"rstransfer: error: {' '.join(str(msg).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
