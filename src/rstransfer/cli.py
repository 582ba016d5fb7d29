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

from rstransfer.core.errors import RSTransferError


class UsageError(RSTransferError):
    """Wrong combination of command-line options."""


def _config(args: argparse.Namespace) -> dict[str, Any]:
    from rstransfer.core.config import load_config

    return load_config(args.config or ["config.yaml"])


def _layout(cfg: dict[str, Any]) -> Any:
    from rstransfer.core.paths import Layout

    return Layout.from_config(cfg)


def cmd_step(args: argparse.Namespace) -> None:
    """One step of one study: ``--run`` names the run (its folder below the step, e.g.
    ``Network_2/seed0``); ``--all`` runs every run of the config in turn."""
    from .core.study import rank, run_step
    from .studies import get_study

    cfg = _config(args)
    study = get_study(args.study)
    step = study.step(args.command)
    layout = _layout(cfg)
    if args.all:
        runs = study.runs(cfg, args.command)
    elif args.run is None and not step.wildcards():
        runs = [{}]
    elif args.run is None:
        paths = [step.run_path(r) for r in study.runs(cfg, args.command)]
        raise UsageError(f"{args.command}: give --run (one of: {', '.join(paths) or 'none in this config'}) or --all")
    else:
        runs = [step.parse_run(args.run)]
    if args.out and len(runs) != 1:
        raise UsageError(f"{args.command}: --out needs a single run")
    overrides = dict(_key_value(kv, "--input") for kv in args.input or [])
    for run in runs:
        summary = run_step(cfg, study, args.command, run, layout, out=args.out, threads=args.threads,
                           input_overrides=overrides)
        if summary.get("line") and rank() == 0:  # one line per run, not one per Horovod rank
            print(f"{study.name}: {summary['line']}")


def _key_value(text: str, option: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UsageError(f"{option}: expected NAME=PATH, got {text!r}")
    return key, value


def cmd_runs(args: argparse.Namespace) -> None:
    """Every run folder of a study's steps in this config (what --run takes)."""
    from .core.study import STEPS
    from .studies import get_study

    cfg = _config(args)
    study = get_study(args.study)
    layout = _layout(cfg)
    for name in [args.step] if args.step else STEPS:
        if name in study.steps:
            step = study.steps[name]
            for run in study.runs(cfg, name):
                print(f"{name}\t{step.run_path(run) or '-'}\t{layout.run_dir(study.name, name, step.run_path(run))}")


def cmd_index(args: argparse.Namespace) -> None:
    """The top-level report page linking every enabled study's report."""
    import os

    from .core.report import write_index
    from .studies import enabled_studies

    cfg = _config(args)
    layout = _layout(cfg)
    out = Path(args.out or layout.report_index())
    pages = []
    for study in enabled_studies(cfg):
        page = Path(layout.run_dir(study.name, "report", file=study.report_page))
        if not page.is_file():
            raise UsageError(f"index: {page} missing; run `rstransfer report --study {study.name}` first")
        pages.append((study.title, os.path.relpath(page, out.parent), f"({study.name})"))
    print(f"report: {write_index(out.parent, cfg['team'], pages, out.name)}")


def cmd_studies(args: argparse.Namespace) -> None:
    from .studies import load_all

    cfg = _config(args) if args.config or Path("config.yaml").is_file() else None
    for study in load_all().values():
        state = "" if cfg is None else ("enabled" if study.is_enabled(cfg) else "disabled")
        print(f"{study.name:<14} {state:<9} {study.title}  [steps: {', '.join(study.steps)}]")


def cmd_policies(args: argparse.Namespace) -> None:
    from .studies import get_study

    study = get_study(args.study)
    if study.policy_table is None:
        raise UsageError(f"policies: study {study.name!r} has no layer policies")
    shape = {k: v for k, v in {"classes": args.classes, "bands": args.bands, "window": args.window}.items() if v}
    title, rows = study.policy_table(shape)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(title)
    print(f"{'policy':<12} {'trainable params':>16} {'total params':>13} {'ratio':>9}  trainable layers")
    for r in rows:
        print(
            f"{r['policy']:<12} {r['trainable_params']:>16,} {r['total_params']:>13,} "
            f"{100 * r['trainable_ratio']:>8.3f}%  {r['trainable_layers']}"
        )


def cmd_download(args: argparse.Namespace) -> None:
    from rstransfer.core.errors import ConfigError
    from rstransfer.data.fetch import download, extract_zip
    from rstransfer.studies import get_study

    cfg = _config(args)
    if bool(args.dataset) == bool(args.study):
        raise UsageError("download: give --dataset KEY (a declared dataset) or --study NAME (its archives)")
    if args.dataset:
        entry = cfg["datasets"].get(args.dataset)
        if entry is None:
            raise ConfigError(f"--dataset: unknown dataset {args.dataset!r}")
        print(download(entry, Path(cfg.get("data_root", ".")) / entry["path"], key=args.dataset))
        return
    items = get_study(args.study).downloads(cfg)
    if not items:
        raise ConfigError(f"--study {args.study}: the study downloads nothing")
    for item in items:
        path = download(item, Path(item["dest"]), key=item["key"], section="")
        unpacked = extract_zip(path, Path(item["dest"])) if item.get("extract") else []
        print(f"{path}" + (f" -> unpacked {', '.join(unpacked)} into {item['dest']}" if unpacked else ""))


def cmd_inspect(args: argparse.Namespace) -> None:
    """What the reader finds in a declared dataset: check a declaration before a job is spent on it."""
    from .core.errors import ConfigError
    from .data.inspect import inspect_dataset

    cfg = _config(args)
    if args.dataset not in cfg["datasets"]:
        raise ConfigError(f"inspect: unknown dataset {args.dataset!r} (declared under datasets: {sorted(cfg['datasets'])})")
    print(inspect_dataset(args.dataset, cfg["datasets"][args.dataset], cfg.get("data_root", ".")))


def cmd_launch(args: argparse.Namespace) -> None:
    from rstransfer.core.launch import launch

    raise SystemExit(launch(args.config or ["config.yaml"], args.command_args, main, dry_run=args.dry_run))


def cmd_config(args: argparse.Namespace) -> None:
    import yaml

    print(yaml.safe_dump(_config(args), sort_keys=True), end="")


def cmd_submit(args: argparse.Namespace) -> None:
    from rstransfer.core.io import write_json
    from .leaderboard.records import submit
    from .leaderboard.tasks import active_tasks

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
    from .leaderboard import build, organiser

    cfg = _config(args)
    lb = cfg["leaderboard"]
    if args.dir and not Path(args.dir).is_dir():  # a typo must not become a new, empty board
        raise UsageError(f"--dir {args.dir}: no such folder (the folder that holds submissions/)")
    root = Path(args.dir) if args.dir else Path(_layout(cfg).board_dir()).parent
    if args.setup:
        root.mkdir(parents=True, exist_ok=True)
        for line in organiser.setup(root, organiser.load_teams(lb["teams"])):
            print(line)
        return
    b = build.build(root, lb, _layout(cfg).ground_truth_dir(), args.title or lb["title"])
    print(f"leaderboard: {b['teams']} team(s), {len(b['records'])} scored, {len(b['rejected'])} rejected -> {b['dir']}")
    for r in b["rejected"]:
        print(f"rejected {r.file}: {r.reason}")


def cmd_ground_truth(args: argparse.Namespace) -> None:
    from rstransfer.core.study import publish

    from .leaderboard.organiser import write_public, write_truth
    from .leaderboard.tasks import active_tasks, get_task

    cfg = _config(args)
    layout = _layout(cfg)
    out = Path(args.out or layout.ground_truth_dir())
    if args.if_missing and out.is_dir():
        print(f"ground truth: {out} exists (kept)")
        return
    tasks = active_tasks(cfg)
    truths = {t: get_task(t).truth(cfg, layout) for t in tasks}  # all read before any write
    staging = out.parent / f".{out.name}.staging"
    for task, truth in truths.items():
        write_truth(staging, task, truth)
        print(f"ground truth {task}: {truth.meta['benchmark']} -> {out / (task + '.npz')}")
    publish(staging, out)  # every task's labels, or none
    if args.public:
        for path in write_public(Path(args.public), truths):
            print(f"public: {path} (for the teams: labels without the hidden test set)")


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

    from .core.study import STEPS

    step_help = {
        "prepare": "read and split the data of a study (no training)",
        "pretrain": "train on the source task",
        "finetune": "fine-tune under one policy (or experiment, strategy...) and seed",
        "evaluate": "test metrics of one fine-tuned run",
        "report": "tables, figures and index.html over all runs of a study",
    }
    for name in STEPS:
        p = with_threads(with_config(add(name, cmd_step, step_help[name])))
        p.add_argument("--study", required=True, help="registered study (rstransfer studies)")
        p.add_argument("--run", help="the run, as its folder below the step (rstransfer runs --study S)")
        p.add_argument("--all", action="store_true", help="every run of this step in the config, in turn")
        p.add_argument("--out", help="run folder (default: <results>/<study>/<step>/<run>)")
        p.add_argument("--input", action="append", metavar="NAME=PATH", help="override one input of the run")

    p = with_config(add("runs", cmd_runs, "list the runs of a study's steps (what --run takes)"))
    p.add_argument("--study", required=True)
    p.add_argument("--step", choices=STEPS)

    with_config(add("studies", cmd_studies, "list the registered studies"))

    p = with_config(add("index", cmd_index, "the top-level report page linking every enabled study's report"))
    p.add_argument("--out", help="index page (default: <results>/report/index.html)")

    p = add("policies", cmd_policies, "trainable parameters per fine-tuning policy (Table 5)")
    p.add_argument("--study", default="hsi")
    p.add_argument("--classes", type=int, help="classes of the head")
    p.add_argument("--bands", type=int, help="input bands (HSI: components per pixel after PCA)")
    p.add_argument("--window", type=int, help="input window / patch size in pixels")
    p.add_argument("--json", action="store_true")

    p = with_config(add("inspect", cmd_inspect, "what the reader finds in a declared dataset (shape, values, classes)"))
    p.add_argument("dataset", help="key under datasets:")

    p = with_config(add("download", cmd_download, "download a declared dataset or a study's archive (url + sha256)"))
    p.add_argument("--dataset", help="a key under datasets:")
    p.add_argument("--study", help="a study whose archives to fetch, check and unpack (rstransfer studies lists them)")

    p = with_config(
        add("launch", cmd_launch, "run a training step as the config's distribution says (srun / horovodrun / plain)")
    )
    p.add_argument("--dry-run", action="store_true", help="print the command instead of running it")
    p.add_argument("command_args", nargs=argparse.REMAINDER, help="-- SUBCOMMAND [ARGS...]")

    p = with_config(add("submit", cmd_submit, "write the team's evaluated runs as immutable leaderboard submissions"))
    p.add_argument("--task", help="leaderboard task, e.g. hsi (default: every task the config runs)")
    p.add_argument("--team", help="workgroup name (default: the config's team)")
    p.add_argument("--runs", nargs="+", help="evaluate folders (default: every run of the config)")
    p.add_argument("--out", help="receipt JSON (default: results layout)")

    p = with_config(add("leaderboard", cmd_leaderboard, "organiser: score every submission, publish board/leaderboard.{csv,md,html}"))
    p.add_argument("--dir", help="folder holding submissions/ (default: the config's leaderboard.dir)")
    p.add_argument("--title", help="page heading (default: the config's leaderboard.title)")
    p.add_argument("--setup", action="store_true", help="create submissions/ and the team folders (teams file), then stop")

    p = with_config(add("ground-truth", cmd_ground_truth, "organiser: export the hidden test labels of every task"))
    p.add_argument("--out", help="folder (default: the config's leaderboard.ground_truth)")
    p.add_argument("--if-missing", action="store_true", help="do nothing if the folder exists")
    p.add_argument("--public", help="also write what teams of a sealed competition get (labels without the test set)")

    with_config(add("config", cmd_config, "print the merged, validated config"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--rank-from-slurm"]:  # one srun task = one Horovod rank (rstransfer.core.launch)
        from .core.launch import rank_args

        try:
            argv = rank_args(argv[1:])
        except RSTransferError as exc:
            print(f"rstransfer: error: {exc}", file=sys.stderr)
            return 2
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except RSTransferError as exc:
        from rstransfer.core.checkpoint import EXIT_RESUMABLE, TrainingInterrupted

        print(f"rstransfer: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_RESUMABLE if isinstance(exc, TrainingInterrupted) else 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
