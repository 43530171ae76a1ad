"""Text normalisation: mojibake repair, NFC, entities, control, zero-width and bidi characters."""

from __future__ import annotations

import html
import re
import unicodedata

import ftfy
from ftfy.badness import BADNESS_RE

# C0/C1 controls except tab and newline (CR is folded into newline first).
_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# Zero-width and invisible formatting characters that carry no text. ZWJ/ZWNJ (U+200C/U+200D)
# are kept: they are meaningful inside words in Indic, Persian and emoji sequences.
_INVISIBLE = re.compile("[\u200b\u2060\ufeff\u00ad\u180e\u2061-\u2064]")
# Bidi embedding/override/isolate controls: dropped so that text cannot be visually spoofed.
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")
# Whitespace other than newline, including NBSP and the Unicode spaces, collapsed to one space.
# (A lone plain space is left alone: matching every space would cost a substitution per word.)
_SPACES = re.compile(r"[^\S\n]{2,}|[^\S\n ]")
_MANY_NEWLINES = re.compile(r"\n{3,}")
_ENTITY = re.compile(r"&(?:#\d{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
_FTFY_CONFIG = ftfy.TextFixerConfig(
    unescape_html=False,  # entities are handled below, only where they look like entities
    uncurl_quotes=False,  # typographic quotes are the text, not damage
    fix_line_breaks=True,
    normalization="NFC",
    explain=False,
)
# ftfy is linear but not cheap; beyond this many characters only the fast steps run.
_FTFY_MAX_CHARS = 3_000_000


_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
# Every mojibake pattern of ftfy's badness test contains a non-ASCII character and spans at most
# seven characters, so it can only match within this reach of a non-ASCII run.
_MOJIBAKE_REACH = 8


def looks_like_mojibake(text: str) -> bool:
    """Return ftfy's `is_bad(text)`, testing only the neighbourhoods of non-ASCII characters.

    English text carries a few curly quotes and dashes; testing a few characters around each
    instead of the whole text gives the same answer at a quarter of the cost. In text that is
    mostly non-ASCII the windows merge, and the whole text is tested once.
    """
    if text.isascii():
        return False
    windows: list[list[int]] = []
    for match in _NON_ASCII.finditer(text):
        start, end = max(0, match.start() - _MOJIBAKE_REACH), match.end() + _MOJIBAKE_REACH
        if windows and start <= windows[-1][1]:
            windows[-1][1] = end
        else:
            windows.append([start, end])
    # search(text, pos, endpos) keeps `^` anchored at the real start of the text.
    return any(BADNESS_RE.search(text, start, end) for start, end in windows)


def strip_controls(text: str) -> str:
    """Return `text` without C0/C1 control characters (NUL included), newlines and tabs as spaces.

    For one-line fields (title, authors, section, site name): PostgreSQL refuses NUL, and a
    control character in a title can forge terminal output or a log line.
    """
    return " ".join(_CONTROL.sub("", text.replace("\t", " ").replace("\n", " ").replace("\r", " ")).split())


def normalise_text(text: str) -> str:
    """Return `text` repaired and normalised, paragraph breaks kept; pure and idempotent."""
    if not text.isascii():
        text = _SURROGATE.sub("\ufffd", text)  # lone surrogates from undecodable bytes
        # ftfy is thorough but slow; its own badness test decides cheaply whether it is needed.
        if len(text) <= _FTFY_MAX_CHARS and looks_like_mojibake(text):
            text = ftfy.fix_text(text, _FTFY_CONFIG)
    if "&" in text and _ENTITY.search(text):
        text = html.unescape(text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    text = _INVISIBLE.sub("", text)
    text = _BIDI.sub("", text)
    text = unicodedata.normalize("NFC", text)
    text = _SPACES.sub(" ", text)
    lines = [line.strip() for line in text.split("\n")]
    text = "\n".join(lines)
    return _MANY_NEWLINES.sub("\n\n", text).strip()
