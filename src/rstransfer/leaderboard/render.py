"""The boards: every team's submissions ranked per task and test set, written as
``leaderboard.{csv,md,html}``. They depend on the submissions only (no build time), so an
unchanged input rebuilds byte-identical files; the HTML page is static and self-contained."""

from __future__ import annotations

import csv
import html
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rstransfer.core.io import write_text

from .records import load_submissions
from .tasks import Task, all_tasks

#: a spreadsheet reads a cell starting with one of these as a formula
CSV_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Board:
    task: str
    benchmark: str
    ranked: list[tuple[int, dict[str, Any]]]  # (rank, the team's best submission)
    history: list[dict[str, Any]]  # every submission, oldest first


def _score(rec: dict[str, Any], tasks: dict[str, Task]) -> float:
    return float(rec["scores"][tasks[rec["task"]].metric])


def _preference(rec: dict[str, Any], tasks: dict[str, Task]) -> tuple[Any, ...]:
    """Better first: higher metric, then cheaper, then earlier, then team and id."""
    return (-_score(rec, tasks), rec["cost"]["train_seconds"], rec["date"], rec["team"], rec["id"])


def boards(records: list[dict[str, Any]]) -> list[Board]:
    """One board per task and test set; within it one row per team, ranked by the metric.

    Equal metric values share a rank (1, 1, 3).
    """
    tasks = all_tasks()
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for rec in records:
        groups.setdefault((rec["task"], rec["benchmark"]), []).append(rec)
    order = {name: i for i, name in enumerate(tasks)}
    out = []
    for (task, bench), recs in sorted(groups.items(), key=lambda kv: (order[kv[0][0]], kv[0][1])):
        best: dict[str, dict[str, Any]] = {}
        for rec in sorted(recs, key=lambda r: _preference(r, tasks)):
            best.setdefault(rec["team"], rec)
        ranked, rank = [], 0
        for i, rec in enumerate(sorted(best.values(), key=lambda r: _preference(r, tasks))):
            if i == 0 or _score(rec, tasks) != _score(ranked[-1][1], tasks):
                rank = i + 1
            ranked.append((rank, rec))
        history = sorted(recs, key=lambda r: (r["date"], r["team"], r["entry"], r["id"]))
        out.append(Board(task, bench, ranked, history))
    return out


CSV_COLUMNS = [
    "task", "benchmark", "rank", "team", "entry", "model", "OA", "AA", "Kappa", "train_seconds", "gpu_hours",
    "trainable_params", "total_params", "date", "id", "best",
]  # fmt: skip


def csv_cell(value: Any) -> Any:
    """Neutralise text a spreadsheet would run as a formula (OWASP: prefix with ')."""
    if isinstance(value, str) and value.startswith(CSV_FORMULA_START):
        return "'" + value
    return value


def _row(rec: dict[str, Any], rank: int | None, best: bool) -> dict[str, Any]:
    s, c = rec["scores"], rec["cost"]
    return {
        "task": rec["task"], "benchmark": rec["benchmark"], "rank": "" if rank is None else rank,
        "team": rec["team"], "entry": rec["entry"], "model": rec["model"],
        "OA": round(s["OA"], 6), "AA": round(s["AA"], 6), "Kappa": round(s["Kappa"], 6),
        "train_seconds": round(c["train_seconds"], 1), "gpu_hours": round(c["gpu_hours"], 4),
        "trainable_params": c["trainable_params"], "total_params": c["total_params"],
        "date": rec["date"], "id": rec["id"], "best": "yes" if best else "no",
    }  # fmt: skip


def render_csv(bs: list[Board]) -> str:
    """One row per submission: each board's ranked rows first (rank filled), then the rest."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for b in bs:
        best_ids = {rec["id"] for _, rec in b.ranked}
        rows = [_row(rec, rank, True) for rank, rec in b.ranked]
        rows += [_row(rec, None, False) for rec in b.history if rec["id"] not in best_ids]
        for row in rows:
            writer.writerow({k: csv_cell(v) for k, v in row.items()})
    return buf.getvalue()


def _when(date: str) -> str:
    """2030-01-02T03:04:05Z -> 2030-01-02 03:04 UTC (the CSV keeps the seconds)."""
    return f"{date[:10]} {date[11:16]} UTC"


def _pct(v: float) -> str:
    return f"{100 * v:.2f}"


def _display(rec: dict[str, Any]) -> list[str]:
    s, c = rec["scores"], rec["cost"]
    return [
        rec["team"], rec["entry"], _pct(s["OA"]), _pct(s["AA"]), _pct(s["Kappa"]),
        f"{c['train_seconds']:.1f}", f"{c['gpu_hours']:.4f}", f"{c['trainable_params']:,}",
        _when(rec["date"]),
    ]  # fmt: skip


def _headers(task: Task) -> list[str]:
    return ["team", task.entry_label, "OA (%)", "AA (%)", "Kappa (%)", "training time (s)", "GPU-hours",
            "trainable params", "date"]  # fmt: skip


def _summary(records: list[dict[str, Any]]) -> str:
    teams = len({r["team"] for r in records})
    latest = max((r["date"] for r in records), default="")
    when = f"; latest {_when(latest)}" if latest else ""
    return f"{teams} team(s), {len(records)} submission(s){when}."


def _md_cell(v: Any) -> str:
    text = html.escape(str(v), quote=False).replace("|", "\\|")
    return " ".join(text.split())


def render_md(bs: list[Board], records: list[dict[str, Any]], title: str) -> str:
    lines = [f"# {_md_cell(title)}", "", _summary(records), ""]
    if not bs:
        lines += ["No submissions yet.", ""]
    tasks = all_tasks()
    for b in bs:
        task = tasks[b.task]
        head = _headers(task)
        lines += [f"## {_md_cell(task.label)}", "", f"Test set: {_md_cell(b.benchmark)}. {_md_cell(_notes(task))}", ""]
        lines += ["| rank | " + " | ".join(head) + " |", "|" + "---|" * (len(head) + 1)]
        lines += ["| " + " | ".join(map(_md_cell, [rank, *_display(rec)])) + " |" for rank, rec in b.ranked]
        lines += ["", "All submissions:", "", "| " + " | ".join(head) + " | id |", "|" + "---|" * (len(head) + 1)]
        lines += ["| " + " | ".join(map(_md_cell, [*_display(rec), rec["id"]])) + " |" for rec in b.history]
        lines.append("")
    return "\n".join(lines)


def _notes(task: Task) -> str:
    return (
        f"Ranked by {task.metric} (higher is better); one row per team, its best submission "
        f"(ties: less training time first). Cost: {task.cost_note}."
    )


CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}.note{max-width:1100px}
table.t{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.92em}table.t td,table.t th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right}
table.t td{white-space:nowrap}table.board tr.r1 td{font-weight:600}
table.board td:nth-child(-n+3),table.board th:nth-child(-n+3),table.history td:nth-child(-n+2),table.history th:nth-child(-n+2){text-align:left}
.note{color:#555;font-size:.9em}code{font-size:.9em}"""


def _html_table(table_id: str, cls: str, head: list[str], rows: list[tuple[dict[str, str], list[Any]]]) -> str:
    parts = [f'<table class="t {cls}" id="{html.escape(table_id)}"><thead><tr>']
    parts += [f"<th>{html.escape(h)}</th>" for h in head]
    parts.append("</tr></thead><tbody>")
    for attrs, cells in rows:
        attr = "".join(f' {k}="{html.escape(str(v))}"' for k, v in attrs.items())
        parts.append(f"<tr{attr}>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


def render_html(bs: list[Board], records: list[dict[str, Any]], title: str) -> str:
    """A static, self-contained page: inline CSS, no scripts, no links to fetch."""
    t = html.escape(title)
    parts = [
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{t}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>{t}</h1>",
        f"<p class=note>{html.escape(_summary(records))} Built from <code>submissions/</code> by "
        "<code>rstransfer leaderboard</code>.</p>",
    ]
    if not bs:
        parts.append("<p>No submissions yet.</p>")
    tasks = all_tasks()
    for i, b in enumerate(bs, 1):
        task = tasks[b.task]
        head = _headers(task)
        ranked = [
            ({"class": f"r{rank}", "data-rank": rank, "data-team": rec["team"]}, [rank, *_display(rec)])
            for rank, rec in b.ranked
        ]
        best_ids = {rec["id"] for _, rec in b.ranked}
        hist = [
            ({"data-team": rec["team"], "data-id": rec["id"]}, [*_display(rec), "yes" if rec["id"] in best_ids else "", rec["id"]])
            for rec in b.history
        ]
        parts += [
            f'<section id="{html.escape(b.task)}-{i}"><h2>{html.escape(task.label)}</h2>',
            f"<p class=note>Test set: <b>{html.escape(b.benchmark)}</b>. {html.escape(_notes(task))}</p>",
            _html_table(f"board-{b.task}-{i}", "board", ["rank", *head], ranked),
            f"<h3>All submissions ({len(b.history)})</h3>",
            _html_table(f"history-{b.task}-{i}", "history", [*head, "best", "id"], hist),
            "</section>",
        ]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def build(root: Path, out: Path | None = None, title: str = "rstransfer leaderboard") -> dict[str, Any]:
    """Read every submission under ``root`` and write ``leaderboard.{csv,md,html}`` into ``out``."""
    out = root if out is None else out
    records = load_submissions(root)
    bs = boards(records)
    files = {
        "csv": render_csv(bs),
        "md": render_md(bs, records, title),
        "html": render_html(bs, records, title),
    }
    paths = {}
    for ext, text in files.items():
        paths[ext] = out / f"leaderboard.{ext}"
        write_text(paths[ext], text)
    return {"files": paths, "boards": bs, "teams": len({r["team"] for r in records}), "submissions": len(records)}
