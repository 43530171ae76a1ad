"""Size limits that are part of the contract with producers and between stages."""

MAX_BODY_BYTES = 16 * 1024 * 1024
"""Largest raw body a producer may submit (UTF-8 bytes)."""

MAX_SOURCE_CHARS = 200
MAX_URL_CHARS = 2048
MAX_TITLE_CHARS = 1000
MAX_LANGUAGE_CHARS = 35
MAX_TEXT_CHARS = 2_000_000
"""Largest cleaned text; cleaning never grows a body past this."""

ARTICLE_ID_PATTERN = r"^[0-9a-f]{32}$"
