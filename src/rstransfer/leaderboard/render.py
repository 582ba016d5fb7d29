"""The boards: every team's scored submissions ranked per task, and every quarantined file
with its reason, written as ``leaderboard.{csv,md,html}``. Every renderer escapes its own
format: HTML entities; Markdown code spans (no links, images or HTML from a submission);
CSV cells that a spreadsheet would run as formulas."""

from __future__ import annotations

import csv
import html
import io
from dataclasses import dataclass
from typing import Any

from .tasks import Task, all_tasks

#: a spreadsheet reads a cell starting with one of these as a formula
CSV_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "|", "%")


@dataclass(frozen=True)
class Board:
    task: str
    benchmark: str
    ranked: list[tuple[int, dict[str, Any]]]  # (rank, the team's best submission)
    history: list[dict[str, Any]]  # every valid submission, oldest first


def _score(rec: dict[str, Any], tasks: dict[str, Task]) -> float:
    return float(rec["scores"][tasks[rec["task"]].metric])


def _preference(rec: dict[str, Any], tasks: dict[str, Task]) -> tuple[Any, ...]:
    """Better first: higher metric, then cheaper, then received earlier, then team and id."""
    return (-_score(rec, tasks), rec["cost"]["train_seconds"], rec["date"], rec["team"], rec["id"])


def boards(records: list[dict[str, Any]]) -> list[Board]:
    """One board per task; within it one row per team (its best submission), equal metric
    values sharing a rank (1, 1, 3)."""
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
        ranked: list[tuple[int, dict[str, Any]]] = []
        rank = 0
        for i, rec in enumerate(sorted(best.values(), key=lambda r: _preference(r, tasks))):
            if i == 0 or _score(rec, tasks) != _score(ranked[-1][1], tasks):
                rank = i + 1
            ranked.append((rank, rec))
        history = sorted(recs, key=lambda r: (r["date"], r["team"], r["entry"], r["id"]))
        out.append(Board(task, bench, ranked, history))
    return out


# ------------------------------------------------------------------------------- cells
def _pct(v: Any) -> str:
    return "" if v is None else f"{100 * v:.2f}"


def _cost(rec: dict[str, Any]) -> list[str]:
    c = rec["cost"]
    mark = "" if c["source"] == "sacct" else " *"
    return [f"{c['train_seconds']:.1f}{mark}", f"{c['gpu_hours']:.4f}{mark}", f"{c['trainable_params']:,}"]


def _when(date: str) -> str:
    """2030-01-02T03:04:05Z -> 2030-01-02 03:04 UTC (the CSV keeps the seconds)."""
    return f"{date[:10]} {date[11:16]} UTC"


def _headers(task: Task) -> list[str]:
    return ["team", task.entry_label, *(h for _, h in task.columns), "training time (s)", "GPU-hours",
            "trainable params", "received"]  # fmt: skip


def _display(rec: dict[str, Any], task: Task) -> list[str]:
    return [rec["team"], rec["entry"], *(_pct(rec["scores"].get(k)) for k, _ in task.columns), *_cost(rec),
            _when(rec["date"])]  # fmt: skip


def _notes(task: Task) -> str:
    return (
        f"Scored by the organiser on hidden labels; ranked by {task.metric} (higher is better), one row per team "
        f"(its best submission; ties: less training time first). Cost: {task.cost_note}; from SLURM accounting "
        f"(sacct), or self-reported where marked *."
    )


def _summary(records: list[dict[str, Any]], rejected: list[Any]) -> str:
    teams = len({r["team"] for r in records})
    latest = max((r["date"] for r in records), default="")
    when = f"; latest received {_when(latest)}" if latest else ""
    return f"{teams} team(s), {len(records)} valid submission(s), {len(rejected)} rejected{when}."


# --------------------------------------------------------------------------------- CSV
def csv_cell(value: Any) -> Any:
    """Neutralise text a spreadsheet would run as a formula (OWASP: prefix with ')."""
    if isinstance(value, str) and value.startswith(CSV_FORMULA_START):
        return "'" + value
    return value


def render_csv(bs: list[Board]) -> str:
    """One row per valid submission: each board's ranked rows first (rank filled), then the rest."""
    tasks = all_tasks()
    keys: list[str] = []
    for b in bs:
        keys += [k for k, _ in tasks[b.task].columns if k not in keys]
    columns = ["task", "benchmark", "rank", "team", "entry", "model", *keys, "train_seconds", "gpu_hours",
               "cost_source", "trainable_params", "total_params", "received", "id", "best"]  # fmt: skip
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for b in bs:
        best_ids = {rec["id"] for _, rec in b.ranked}
        rows = [(rank, rec) for rank, rec in b.ranked] + [(None, r) for r in b.history if r["id"] not in best_ids]
        for rank, rec in rows:
            c = rec["cost"]
            row = {
                "task": rec["task"], "benchmark": rec["benchmark"], "rank": "" if rank is None else rank,
                "team": rec["team"], "entry": rec["entry"], "model": rec["model"],
                **{k: round(rec["scores"][k], 6) for k in keys if rec["scores"].get(k) is not None},
                "train_seconds": round(c["train_seconds"], 1), "gpu_hours": round(c["gpu_hours"], 4),
                "cost_source": c["source"], "trainable_params": c["trainable_params"],
                "total_params": c["total_params"], "received": rec["date"], "id": rec["id"],
                "best": "yes" if rank is not None else "no",
            }  # fmt: skip
            writer.writerow({k: csv_cell(v) for k, v in row.items()})
    return buf.getvalue()


# ---------------------------------------------------------------------------- Markdown
def md_text(v: Any) -> str:
    """Text from a submission as a Markdown code span: no link, image, emphasis or HTML is
    rendered from it; table pipes escaped; backticks (not allowed in entries) dropped."""
    text = " ".join(str(v).replace("`", "'").replace("|", "\\|").split())
    return f"`{text}`" if text else ""


def _md_cells(rec: dict[str, Any], task: Task) -> list[str]:
    """Team and entry (a participant's words) as code spans; the rest is the organiser's figures."""
    team, entry, *rest = _display(rec, task)
    return [md_text(team), md_text(entry), *rest]


def render_md(bs: list[Board], records: list[dict[str, Any]], rejected: list[Any], title: str) -> str:
    lines = [f"# {' '.join(title.split())}", "", _summary(records, rejected), ""]  # the organiser's own text
    if not bs:
        lines += ["No valid submissions yet.", ""]
    tasks = all_tasks()
    for b in bs:
        task = tasks[b.task]
        head = _headers(task)
        lines += [f"## {task.label}", "", f"Test set: {md_text(b.benchmark)}. {_notes(task)}", ""]
        lines += ["| rank | " + " | ".join(head) + " |", "|" + "---|" * (len(head) + 1)]
        lines += ["| " + " | ".join([str(rank), *_md_cells(rec, task)]) + " |" for rank, rec in b.ranked]
        lines += ["", "All submissions:", "", "| " + " | ".join(head) + " | id |", "|" + "---|" * (len(head) + 1)]
        lines += ["| " + " | ".join([*_md_cells(rec, task), rec["id"]]) + " |" for rec in b.history]
        lines.append("")
    lines += ["## Rejected submissions", ""]
    if rejected:
        lines += ["| file | reason |", "|---|---|"]
        lines += [f"| {md_text(r.file)} | {md_text(r.reason)} |" for r in rejected]
    else:
        lines.append("None.")
    lines.append("")
    return "\n".join(lines)


# -------------------------------------------------------------------------------- HTML
CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}.note{max-width:1100px}
table.t{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.92em}table.t td,table.t th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right}
table.t td{white-space:nowrap}table.board tr.r1 td{font-weight:600}
table.board td:nth-child(-n+3),table.board th:nth-child(-n+3),table.history td:nth-child(-n+2),table.history th:nth-child(-n+2),table.rejected td,table.rejected th{text-align:left}
table.rejected td{white-space:normal}.note{color:#555;font-size:.9em}code{font-size:.9em}"""


def _html_table(table_id: str, cls: str, head: list[str], rows: list[tuple[dict[str, Any], list[Any]]]) -> str:
    parts = [f'<table class="t {cls}" id="{html.escape(table_id)}"><thead><tr>']
    parts += [f"<th>{html.escape(h)}</th>" for h in head]
    parts.append("</tr></thead><tbody>")
    for attrs, cells in rows:
        attr = "".join(f' {k}="{html.escape(str(v))}"' for k, v in attrs.items())
        parts.append(f"<tr{attr}>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


def render_html(bs: list[Board], records: list[dict[str, Any]], rejected: list[Any], title: str) -> str:
    """A static, self-contained page: inline CSS, no scripts, no links to fetch."""
    t = html.escape(title)
    parts = [
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{t}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>{t}</h1>",
        f"<p class=note>{html.escape(_summary(records, rejected))} Built by the organiser from "
        "<code>submissions/</code> (<code>rstransfer leaderboard</code>).</p>",
    ]
    if not bs:
        parts.append("<p>No valid submissions yet.</p>")
    tasks = all_tasks()
    for i, b in enumerate(bs, 1):
        task = tasks[b.task]
        head = _headers(task)
        ranked = [
            ({"class": f"r{rank}", "data-rank": rank, "data-team": rec["team"]}, [rank, *_display(rec, task)])
            for rank, rec in b.ranked
        ]
        best_ids = {rec["id"] for _, rec in b.ranked}
        hist = [
            ({"data-team": rec["team"], "data-id": rec["id"]},
             [*_display(rec, task), "yes" if rec["id"] in best_ids else "", rec["id"]])
            for rec in b.history
        ]  # fmt: skip
        parts += [
            f'<section id="{html.escape(b.task)}-{i}"><h2>{html.escape(task.label)}</h2>',
            f"<p class=note>Test set: <b>{html.escape(b.benchmark)}</b>. {html.escape(_notes(task))}</p>",
            _html_table(f"board-{b.task}-{i}", "board", ["rank", *head], ranked),
            f"<h3>All submissions ({len(b.history)})</h3>",
            _html_table(f"history-{b.task}-{i}", "history", [*head, "best", "id"], hist),
            "</section>",
        ]
    rows = [({"data-file": r.file}, [r.file, r.reason]) for r in rejected]
    parts += [
        f'<section id="rejected"><h2>Rejected submissions ({len(rejected)})</h2>',
        "<p class=note>Files under <code>submissions/</code> that were not scored, with the reason; "
        "they do not stop the build.</p>",
        _html_table("rejected-table", "rejected", ["file", "reason"], rows) if rejected else "<p>None.</p>",
        "</section></body></html>",
    ]
    return "\n".join(parts) + "\n"


def render_all(bs: list[Board], records: list[dict[str, Any]], rejected: list[Any], title: str) -> dict[str, str]:
    return {"csv": render_csv(bs), "md": render_md(bs, records, rejected, title),
            "html": render_html(bs, records, rejected, title)}  # fmt: skip
