"""`newsflow report` flags a source whose output changes from one day to the next (real SQLite tables)."""

import json
from datetime import UTC, datetime, timedelta

from typer.testing import CliRunner

from workers.cli import app
from workers.db.engine import transaction, upgrade
from workers.db.models import ArticleRow, RawArticleRow

runner = CliRunner()


def _article(session, n: int, source: str, day: datetime, *, title: str | None, words: int) -> None:
    article_id = f"{n:032x}"
    session.add(
        RawArticleRow(
            id=article_id, source=source, url=None, content_type="text/html", payload="{}", trace_id="t",
            received_at=day,
        )
    )  # fmt: skip
    session.flush()  # the raw article first: articles reference it
    session.add(
        ArticleRow(
            id=article_id, source=source, url=None, canonical_url=None, title=title, text="word " * words,
            word_count=words, published_at=day, language="en", dateline=None, credits=[], authors=[],
            status="unique", duplicate_of=None, cluster_id=article_id, versions={}, stored_at=day,
        )
    )  # fmt: skip


def test_a_layout_change_at_one_site_is_flagged_the_day_it_happens(sqlite_url, tmp_path):
    """Titles vanish and bodies shrink at one site on day two: that site's day two is flagged for
    missing titles, short bodies and median words; the steady site is not flagged; HTML marks the three."""
    upgrade(sqlite_url)
    day1 = datetime.now(UTC).replace(hour=10, minute=0, second=0, microsecond=0) - timedelta(days=1)
    day2 = day1 + timedelta(days=1) - timedelta(hours=1)
    with transaction(sqlite_url) as session:
        n = 0
        for day in (day1, day2):
            for _ in range(8):
                n += 1
                _article(session, n, "steady.example", day, title="A title", words=400)
        for _ in range(8):
            n += 1
            _article(session, n, "changed.example", day1, title="A title", words=400)
        for _ in range(8):
            n += 1
            _article(session, n, "changed.example", day2, title=None, words=30)
    page = tmp_path / "report.html"
    window = ["--since", day1.date().isoformat(), "--until", (day2 + timedelta(days=1)).date().isoformat()]
    result = runner.invoke(app, ["report", "--db", sqlite_url, *window, "--json", "--html", str(page)])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    flagged = {(f["source"], f["metric"]) for f in data["flagged"]}
    assert flagged == {
        ("changed.example", "missing_title_rate"),
        ("changed.example", "short_rate"),
        ("changed.example", "median_words"),
    }
    latest = data["sources"]["changed.example"][-1]
    assert latest["missing_title_rate"] == 1.0
    assert latest["change"]["missing_title_rate"] == 1.0
    assert latest["median_words"] == 30
    text = page.read_text()
    # Every metric with more than one point, of both sources, flagged or not (text removed has no data).
    assert text.count("<svg") == 2 * 8
    assert text.count('class="point flag"') == 3  # the three flags, drawn red
    assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")  # self-contained


def _png_pixels(path):
    """(width, height, rows of RGB tuples) of an 8-bit RGB or RGBA PNG, decoded with the standard library."""
    import struct
    import zlib

    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, color, _, _, interlace = header
    assert depth == 8, header
    assert color in (2, 6), header
    assert interlace == 0, header
    channels = 3 if color == 2 else 4
    raw, stride = zlib.decompress(idat), width * channels
    rows, previous, i = [], bytearray(stride), 0
    for _ in range(height):
        kind, line = raw[i], bytearray(raw[i + 1 : i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a = line[x - channels] if x >= channels else 0
            b = previous[x]
            c = previous[x - channels] if x >= channels else 0
            if kind == 1:
                line[x] = (line[x] + a) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + b) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append([tuple(line[x : x + 3]) for x in range(0, stride, channels)])
        previous = line
    return width, height, rows


def _chromium() -> str:
    import os
    import shutil

    import pytest

    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs it")
        pytest.skip("chromium not installed (CI installs it)")
    return found


def test_the_html_report_renders_in_a_real_browser_with_charts_and_flags(sqlite_url, tmp_path):
    """`report --html` is a page a browser draws: headless Chromium renders it to a screenshot of the asked
    size, not blank, with the blue lines of the charts and the red of the flagged points and cells; the
    page holds a chart per metric and source, rates as percentages, and no script or outside resource."""
    import subprocess

    upgrade(sqlite_url)
    day1 = datetime.now(UTC).replace(hour=10, minute=0, second=0, microsecond=0) - timedelta(days=2)
    with transaction(sqlite_url) as session:
        n = 0
        for offset, (title, words) in enumerate([("A title", 400), ("A title", 380), (None, 30)]):
            for _ in range(6):
                n += 1
                _article(
                    session, n, "changed.example", day1 + timedelta(days=offset), title=title, words=words
                )
                n += 1
                _article(session, n, "steady.example", day1 + timedelta(days=offset), title="T", words=300)
    page = tmp_path / "report.html"
    window = ["--since", day1.date().isoformat(), "--until", (day1 + timedelta(days=3)).date().isoformat()]
    result = runner.invoke(app, ["report", "--db", sqlite_url, *window, "--html", str(page)])
    assert result.exit_code == 0, result.stderr
    text = page.read_text()
    assert text.count("<svg") == 2 * 8  # a chart per metric with data (text removed has none) per source
    assert "<script" not in text.lower()
    assert "http" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "no title: 0% → 100% (+100 points)" in text
    import re

    cells = re.findall(r"<td[^>]*>([^<]*)</td>", text)
    assert "100%" in cells
    assert not [c for c in cells if re.fullmatch(r"0\.\d+|1\.0", c)]  # rates as percentages, never fractions
    assert "flag: changed.example" in result.stderr
    assert "→ 100%" in result.stderr

    shot = tmp_path / "report.png"
    browser = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1100,900", f"--screenshot={shot}",
         page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert shot.exists(), browser.stderr[-2000:]
    width, height, rows = _png_pixels(shot)
    assert (width, height) == (1100, 900)
    pixels = [px for row in rows for px in row]
    assert len(set(pixels)) > 50, "the screenshot is blank"

    def near(colour: tuple[int, int, int], px: tuple[int, ...]) -> bool:
        return all(abs(a - b) <= 40 for a, b in zip(colour, px, strict=True))

    blue = sum(near((0x2A, 0x6F, 0xDB), px) for px in pixels)
    red = sum(near((0xD4, 0x11, 0x1E), px) for px in pixels)
    assert blue > 500, f"chart lines: {blue} blue pixels"
    assert red > 100, f"flags: {red} red pixels"


def _dead(session, n: int, source: str, day: datetime) -> None:
    """A raw article of `source` received on `day` that ended as a dead letter."""
    from workers.db.models import DeadLetterRow

    article_id = f"{n:032x}"
    session.add(
        RawArticleRow(id=article_id, source=source, url=None, content_type="text/html", payload="{}",
                      trace_id="t", received_at=day)
    )  # fmt: skip
    session.add(
        DeadLetterRow(article_id=article_id, stage="clean", error_class="NotHtml", reason="not_html",
                      message="m", attempts=1, payload="{}", first_failed_at=day, last_failed_at=day)
    )  # fmt: skip


def test_a_new_source_all_dead_letters_is_flagged_and_the_page_starts_with_the_worst(sqlite_url, tmp_path):
    """A source whose every article is dead-lettered on its first (only) day gets an absolute flag; the HTML
    page opens with an overview table, worst source first; a source with one period gets no charts
    (one-dot charts say nothing); dates are days, not ISO timestamps with microseconds."""
    import re

    upgrade(sqlite_url)
    day1 = datetime.now(UTC).replace(hour=10, minute=0, second=0, microsecond=0) - timedelta(days=2)
    with transaction(sqlite_url) as session:
        n = 0
        for source in ("aaa.example", "zzz.example"):
            for offset in (0, 1):
                for _ in range(5):
                    n += 1
                    _article(session, n, source, day1 + timedelta(days=offset), title="T", words=300)
        for _ in range(4):
            n += 1
            _dead(session, n, "new.example", day1 + timedelta(days=1))
    page = tmp_path / "report.html"
    result = runner.invoke(app, ["report", "--db", sqlite_url, "--days", "4", "--json", "--html", str(page)])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    [flag] = data["flagged"]
    assert (flag["source"], flag["metric"], flag["kind"], flag["to"]) == (
        "new.example",
        "dead_letter_rate",
        "absolute",
        1.0,
    )
    assert [row["source"] for row in data["overview"]] == ["new.example", "aaa.example", "zzz.example"]
    text = page.read_text()
    assert (
        text.index("<h2>Overview</h2>")
        < text.index("id='source-new-example'")
        < text.index("id='source-aaa-example'")
    )
    assert "dead letters: 100% (above 20%)" in text
    new_section = text[text.index("id='source-new-example'") : text.index("id='source-aaa-example'")]
    assert "<svg" not in new_section
    assert (
        text.count("<svg") == 2 * 8
    )  # two sources with two days each: every metric but text removed (no data)
    header = text[text.index("<p>") : text.index("</p>")]
    assert not re.search(r"\d{2}:\d{2}:\d{2}\.\d+|T\d{2}:", header), header
    terminal = runner.invoke(app, ["report", "--db", sqlite_url, "--days", "4"])
    assert terminal.stdout.index("new.example") < terminal.stdout.index("aaa.example")  # worst first here too
    assert "flag: new.example" in terminal.stderr
