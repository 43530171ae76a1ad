"""Size limits that are part of the contract with producers and between stages."""

MAX_BODY_BYTES = 16 * 1024 * 1024
"""Largest raw body a producer may submit (UTF-8 bytes): a text dump, or a page with its scripts."""

MAX_HTML_BYTES = 2 * 1024 * 1024
"""Largest HTML the pipeline parses, counted without scripts, styles, comments and inline data
(runs of 20,000+ characters without a space or tag). The producer refuses a page past it (`body`:
"HTML is N bytes ..."), and the clean stage's `too_large` guard reads this same constant, so an
article the producer accepted is never dead-lettered for its size. 2 MiB keeps a page within the
clean stage's one-second budget (measured: 2 MB of article markup cleans in 0.6 s of CPU)."""

MAX_SOURCE_CHARS = 200
MAX_URL_CHARS = 2048
MAX_TITLE_CHARS = 1000
MAX_LANGUAGE_CHARS = 35
MAX_TEXT_CHARS = 2_000_000
"""Largest cleaned text; cleaning never grows a body past this."""

MAX_MESSAGE_BYTES = 1024 * 1024
"""Largest stage-task message body a worker accepts. A message carries ids, not documents (at most
`NEWSFLOW_BATCH_SIZE` ids and trace ids: a few kilobytes); a larger one is dead-lettered
`invalid_message` in the worker's main process by its size, before it is parsed."""

ARTICLE_ID_PATTERN = r"^[0-9a-f]{32}$"


def mib(size: int) -> str:
    """A byte count as MiB for messages: 16777216 -> '16 MiB'."""
    value = size / (1024 * 1024)
    return f"{value:.0f} MiB" if value == int(value) else f"{value:.1f} MiB"
