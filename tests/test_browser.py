"""The static pages in a real browser: headless Chromium renders the leaderboard and the
report built from fake-but-valid team runs (see test_leaderboard.py), the rendered DOM shows
the ranking in order, a screenshot is saved under the test's results/screenshots/, and the
pages fetch nothing: Chromium runs behind a recording proxy, and a control page with an
external image proves that the proxy sees page fetches.

Chromium is the Debian package ``chromium``; tests/run.sh installs it when it runs as root
and then sets RSTRANSFER_BROWSER_REQUIRED=1, so in CI this module fails instead of skipping.
"""

from __future__ import annotations

import http.server
import os
import shutil
import socketserver
import struct
import subprocess
import threading
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from conftest import run_cli_in
from test_leaderboard import Team, build, organise, three_teams

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps",
    "--disable-dev-shm-usage", "--hide-scrollbars",
]  # fmt: skip
WINDOW = (1280, 900)
#: hosts of Chromium's own background requests (time sync, updates, sign-in), not page fetches
BROWSER_SERVICE_HOSTS = ("google.com", "googleapis.com", "gstatic.com", "gvt1.com", "googleusercontent.com")


@pytest.fixture(scope="module")
def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("RSTRANSFER_BROWSER_REQUIRED") == "1":
            pytest.fail("chromium is required here (RSTRANSFER_BROWSER_REQUIRED=1) but not on PATH")
        pytest.skip("chromium not installed (tests/run.sh installs it as root: apt-get install chromium)")
    return exe


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[str] = []

    def _refuse(self) -> None:
        type(self).seen.append(f"{self.command} {self.path}")
        self.send_error(403)

    do_GET = do_POST = do_HEAD = do_CONNECT = _refuse

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def proxy() -> Iterator[tuple[int, list[str]]]:
    """A local HTTP proxy that answers 403 to everything and records what was asked."""
    seen: list[str] = []
    handler = type("Recorder", (_Recorder,), {"seen": seen})
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], seen
    server.shutdown()
    server.server_close()


def page_fetches(seen: list[str]) -> list[str]:
    def host(entry: str) -> str:
        target = entry.split(" ", 1)[1]
        target = target.split("://", 1)[-1]
        return target.split("/", 1)[0].split(":", 1)[0]

    return [e for e in seen if not host(e).endswith(BROWSER_SERVICE_HOSTS)]


def render(chromium: str, proxy: tuple[int, list[str]], page: Path, screenshot: Path, profile: Path) -> tuple[str, list[str]]:
    """Open ``page`` headless; return (the DOM after load, the page's network requests)."""
    port, seen = proxy
    seen.clear()
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--proxy-server=http://127.0.0.1:{port}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}", f"--screenshot={screenshot}", "--dump-dom", page.resolve().as_uri(),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env={**os.environ, "HOME": str(profile)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "<html" in proc.stdout.lower(), proc.stderr[-3000:]
    return proc.stdout, page_fetches(seen)


class Tables(HTMLParser):
    """Rows of every table in a DOM dump: {table id: [(tr attributes, [cell texts])]}."""

    def __init__(self, dom: str) -> None:
        super().__init__()
        self.tables: dict[str, list[tuple[dict[str, str], list[str]]]] = {}
        self.classes: dict[str, str] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None
        self.feed(dom)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "table":
            self._table = a.get("id", f"table{len(self.tables)}")
            self.tables[self._table] = []
            self.classes[self._table] = a.get("class", "")
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append((a, []))
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            self.tables[self._table][-1][1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def body_rows(self, table_id: str) -> list[tuple[dict[str, str], list[str]]]:
        return self.tables[table_id][1:]  # the first row is the header


def check_screenshot(path: Path) -> None:
    from PIL import Image

    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == WINDOW
    with Image.open(path) as img:
        colours = img.convert("RGB").getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 20, "screenshot is (nearly) blank"


def test_the_proxy_sees_page_fetches(chromium: str, proxy: tuple[int, list[str]], tmp_path: Path) -> None:
    """Control: a page with external resources is caught, so zero fetches below means zero."""
    page = tmp_path / "external.html"
    page.write_text(
        '<!doctype html><html><body><img src="http://fetch-probe.invalid/a.png">'
        '<div style="background:url(https://fetch-probe.invalid/b.png)">x</div></body></html>'
    )
    _, fetches = render(chromium, proxy, page, tmp_path / "external.png", tmp_path / "profile")
    assert any("fetch-probe.invalid" in f for f in fetches), fetches


def test_leaderboard_renders_the_ranking_in_order(chromium: str, proxy: tuple[int, list[str]], tmp_path: Path) -> None:
    teams = three_teams(tmp_path)
    for team in teams.values():
        team.submit()
    organise(tmp_path)
    (tmp_path / "board" / "submissions" / "WG03" / "perfect.json").write_text('{"OA": 1.0}')
    build(tmp_path)
    board = tmp_path / "board" / "board"
    results = tmp_path / "results"
    shot = results / "screenshots" / "leaderboard.png"
    dom, fetches = render(chromium, proxy, board / "leaderboard.html", shot, tmp_path / "profile")
    assert fetches == []
    tables = Tables(dom)
    (board_id,) = [t for t, cls in tables.classes.items() if "board" in cls.split()]
    rows = tables.body_rows(board_id)
    assert [(a["data-rank"], a["data-team"]) for a, _ in rows] == [("1", "WG02"), ("2", "WG01"), ("3", "WG03")]
    assert [cells[:4] for _, cells in rows] == [
        ["1", "WG02", "Original seed 0", "96.00"],
        ["2", "WG01", "Network_6 seed 0", "90.00"],
        ["3", "WG03", "Network_2 seed 0", "84.00"],
    ]
    (history_id,) = [t for t, cls in tables.classes.items() if "history" in cls.split()]
    assert sorted(cells[0] for _, cells in tables.body_rows(history_id)) == ["WG01", "WG01", "WG02", "WG03"]
    (rejected,) = tables.body_rows("rejected-table")
    assert rejected[1][:2] == ["WG03/perfect.json", rejected[1][1]] and "never accepted" in rejected[1][1]
    check_screenshot(shot)


class Links(HTMLParser):
    """``href`` of every link in a DOM dump."""

    def __init__(self, dom: str) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.feed(dom)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs += [v or "" for k, v in attrs if k == "href"]


def test_report_renders_its_tables(chromium: str, proxy: tuple[int, list[str]], tmp_path: Path) -> None:
    """results/hsi/report/index.html as build_report writes it, from fake runs with real-format
    files, and the top-level results/report/index.html (``rstransfer index``) that links it."""
    from PIL import Image

    from rstransfer.studies.hsi.report import build_report

    policies = ["Original", "Network_2", "Network_6"]
    correct = {"Original": 48, "Network_2": 38, "Network_6": 45}
    team = Team(tmp_path, "WG01", {(p, 0): {"correct": correct[p]} for p in policies})
    runs = [Path(team.layout.run_dir("hsi", "evaluate", f"{p}/seed0")) for p in policies]
    for i, run in enumerate(runs):
        Image.new("RGB", (32, 24), (40 * i, 120, 200)).save(run / "map.png")
    index = build_report(team.cfg, runs, Path(team.layout.run_dir("hsi", "report")))
    assert index == Path(team.cfg["results"]) / "hsi" / "report" / "index.html"
    shot = tmp_path / "results" / "screenshots" / "report.png"
    dom, fetches = render(chromium, proxy, index, shot, tmp_path / "profile")
    assert fetches == []
    tables = Tables(dom)
    assert [cells[:2] for _, cells in tables.body_rows("table4")] == [["Original", "96.00"], ["Network_2", "76.00"], ["Network_6", "90.00"]]
    assert [cells[0] for _, cells in tables.body_rows("table5")] == policies
    assert "Team WG01" in " ".join(dom.split()).replace("<b>", "").replace("</b>", "")
    check_screenshot(shot)

    # the top-level page: one relative link per enabled study's report (here hsi only)
    rc, out, err = run_cli_in(tmp_path, "index", "--config", team.config_file(tmp_path / "wg01.yaml"))
    assert rc == 0, err
    top = Path(team.layout.report_index())
    assert top == Path(team.cfg["results"]) / "report" / "index.html" and str(top) in out
    dom, fetches = render(chromium, proxy, top, tmp_path / "results" / "screenshots" / "index.png", tmp_path / "profile")
    assert fetches == []
    assert Links(dom).hrefs == ["../hsi/report/index.html"]
    assert (top.parent / "../hsi/report/index.html").resolve() == index.resolve()
    assert "Team WG01" in " ".join(dom.split()).replace("<b>", "").replace("</b>", "")
