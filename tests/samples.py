"""Paths to test inputs: the shared sample page (when ../shared exists) and the project's examples."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SHARED = ROOT.parent / "shared"
SAMPLE_PAGE = SHARED / "corpus" / "ctnnews-tillerson-china.txt"

SAMPLE_TITLE = "U.S. Secretary of State Rex Tillerson in China to Discuss North Korea"
SAMPLE_FIRST = "BEIJING –"
SAMPLE_LAST = "contributed to this story."
SAMPLE_LEAD = "Tillerson is making his second visit as secretary of state to the world’s No. 2 economy"


def sample_page() -> Path:
    """The shared sample page; skips the test where ../shared is not beside the checkout."""
    if not SAMPLE_PAGE.exists():
        pytest.skip("../shared/corpus is not available in this checkout")
    return SAMPLE_PAGE
