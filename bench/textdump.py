"""Render HTML pages as text dumps, the way a browser's "save as text" or a scraper's get_text does.

Every visible block (navigation, share bars, footers included) becomes its own line, blocks are
separated by blank lines, scripts and styles are dropped. Used to build the text-dump dev set:

    .venv/bin/python bench/textdump.py OUT_DIR   # writes OUT_DIR/<id>.txt for the 181 benchmark pages
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import lxml.html
from lxml import etree

BENCH = Path(__file__).resolve().parents[1] / ".." / "shared" / "benchmarks" / "scrapinghub-aeb"

_BLOCK = frozenset(
    [
        "address",
        "article",
        "aside",
        "blockquote",
        "body",
        "br",
        "dd",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "table",
        "td",
        "th",
        "tr",
        "ul",
    ]
)
_HIDDEN = frozenset(["script", "style", "noscript", "template", "head", "svg", "iframe", "object"])


def render(html: str) -> str:
    """Return the visible text of an HTML page, one block per line, blank lines between blocks."""
    try:
        root = lxml.html.fromstring(html)
    except (etree.ParserError, ValueError):
        return ""
    out: list[str] = []

    def walk(node: lxml.html.HtmlElement) -> None:
        tag = node.tag if isinstance(node.tag, str) else ""
        if not tag or tag in _HIDDEN:
            if node.tail:
                out.append(node.tail)
            return
        if tag in _BLOCK:
            out.append("\n")
        if node.text:
            out.append(node.text)
        for child in node:
            walk(child)
        if tag in _BLOCK:
            out.append("\n")
        if node.tail:
            out.append(node.tail)

    walk(root)
    lines = (" ".join(line.split()) for line in "".join(out).split("\n"))
    return "\n\n".join(line for line in lines if line)


def main(argv: list[str]) -> None:
    """Write the text dump of every benchmark page into the directory named by argv[0]."""
    target = Path(argv[0])
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted((BENCH / "html").glob("*.html.gz")):
        html = gzip.decompress(path.read_bytes()).decode("utf-8")
        (target / path.name.replace(".html.gz", ".txt")).write_text(render(html), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])


RENDERERS: dict[str, list[str]] = {
    "w3m": ["w3m", "-dump", "-T", "text/html", "-cols", "4000", "-I", "UTF-8", "-O", "UTF-8"],
    "lynx": [
        "lynx",
        "-dump",
        "-nolist",
        "-width=4000",
        "-force_html",
        "-stdin",
        "-assume_charset=utf-8",
        "-display_charset=utf-8",
    ],
    "html2text": ["html2text", "-utf8", "-nobs", "-width", "4000"],
}
"""Text browsers and their dump commands (HTML on stdin), as `TEXTDUMPS.md` of the benchmark describes."""
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "newsflow-textdumps"


def render_with(renderer: str, dataset: str, html: dict[str, str]) -> dict[str, str]:
    """Return every page rendered by a text browser, lines stripped; cached outside the repository.

    The cache file is `CACHE/<dataset>-<renderer>.jsonl.gz`, keyed by page id. Raises SystemExit
    with the install command when the renderer is missing and nothing is cached.
    """
    path = CACHE / f"{dataset}-{renderer}.jsonl.gz"
    if path.exists():
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            cached = {row["page_id"]: row["body"] for row in map(json.loads, handle)}
        if set(html) <= set(cached):
            return {key: cached[key] for key in html}
    command = RENDERERS[renderer]
    if shutil.which(command[0]) is None:
        sys.exit(f"{renderer} is not installed: apt-get install {renderer}")
    out = {}
    for key, body in html.items():
        try:
            done = subprocess.run(
                command, input=body.encode("utf-8"), capture_output=True, timeout=60, check=False
            )
            text = done.stdout.decode("utf-8", "replace")
        except subprocess.TimeoutExpired:
            text = ""
        out[key] = "\n".join(line.strip() for line in text.split("\n"))
    CACHE.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        for key, body in out.items():
            handle.write(json.dumps({"page_id": key, "body": body}) + "\n")
    return out
