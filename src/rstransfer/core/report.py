"""Report helpers every study uses: one HTML page style, tables (HTML, CSV, Markdown), inlined
figures, mean ± std, and the top-level index that links every enabled study's page.

Pages are self-contained (images inlined as base64, no network fetches) and every value is
escaped.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from rstransfer.core.errors import DataFormatError
from rstransfer.core.io import atomic_path, write_text

CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table.t{border-collapse:collapse;margin:.5em 0 1.5em}table.t td,table.t th{padding:3px 10px;border-bottom:1px solid #ddd;text-align:right}
table.t td:first-child,table.t th:first-child{text-align:left}img{max-width:100%}.note{color:#555;font-size:.9em}
.fig{display:inline-block;margin:0 1em 1em 0;vertical-align:top}
.sw{display:inline-block;width:.9em;height:.9em;border:1px solid #888;vertical-align:middle;margin-right:.3em}"""


def esc(text: Any) -> str:
    return html.escape(str(text))


def page(title: str, body: list[str]) -> str:
    """A complete HTML document with the project's style."""
    return "\n".join(
        [
            f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{esc(title)}</title>",
            f"<style>{CSS}</style></head><body>",
            *body,
            "</body></html>",
        ]
    )


def table(df: Any, table_id: str) -> str:
    """An escaped HTML table of a DataFrame (no index)."""
    return df.to_html(index=False, escape=True, table_id=table_id, border=0, classes="t")


def img(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{data}">'


def figure(path: Path, caption: str) -> str:
    return f'<div class=fig>{img(path, caption)}<div class=note>{esc(caption)}</div></div>'


def write_tables(out: Path, tables: dict[str, Any], markdown: bool = True) -> None:
    """``<name>.csv`` (and ``<name>.md``) for every DataFrame."""
    for name, df in tables.items():
        with atomic_path(out / f"{name}.csv") as tmp:
            df.to_csv(tmp, index=False)
        if markdown:
            write_text(out / f"{name}.md", df.to_markdown(index=False) + "\n")


def mean_std(values: Any, scale: float = 1.0, digits: int = 2) -> str:
    """``"m ± s"`` over seeds/runs (sample std), ``"m"`` for one value, ``"n/a"`` for none."""
    import pandas as pd

    v = pd.Series(values, dtype=float).dropna() * scale
    if len(v) == 0:
        return "n/a"
    if len(v) == 1:
        return f"{v.iloc[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"


def read_json(path: Path, made_by: str) -> dict[str, Any]:
    """A step's JSON output; a missing or broken file is one line naming it and its maker."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: missing; run `{made_by}` first")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataFormatError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None


def save_figure(fig: Any, path: Path, dpi: int = 90) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_index(out: Path, team: str, pages: list[tuple[str, str, str]], name: str = "index.html") -> Path:
    """The top-level ``index.html``: one link per enabled study (title, relative href, note)."""
    items = "".join(f"<li><a href=\"{esc(href)}\">{esc(title)}</a> <span class=note>{esc(note)}</span></li>"
                    for title, href, note in pages)
    index = Path(out) / name
    write_text(index, page("rstransfer report", [f"<h1>rstransfer report</h1><p class=note>Team <b>{esc(team)}</b>.</p>",
                                                 f"<ul>{items}</ul>"]))
    return index
