"""Render HTML pages as text dumps, the way a browser's "save as text" or a scraper's get_text does.

Every visible block (navigation, share bars, footers included) becomes its own line, blocks are
separated by blank lines, scripts and styles are dropped. Used to build the text-dump dev set:

    .venv/bin/python bench/textdump.py OUT_DIR   # writes OUT_DIR/<id>.txt for the 181 benchmark pages
"""

from __future__ import annotations

import gzip
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
