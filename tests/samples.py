"""Paths to test inputs the repository ships: the sample news page (tests/pages/) and the examples.

The sample page is an original article written for these tests (a text dump: the story wrapped in a
news site's chrome), so a fresh clone runs every test with no data from outside the repository.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
PAGES = ROOT / "tests" / "pages"
SAMPLE_PAGE = PAGES / "tidewater-fishing-quotas.txt"
SAMPLE_SOURCE = "tidewaterpost.com"

SAMPLE_TITLE = "Ministers Meet in Lisbon to Settle Atlantic Fishing Quotas"
SAMPLE_FIRST = "LISBON –"
SAMPLE_LAST = "contributed to this story."
SAMPLE_LEAD = "Ministers are meeting for the third time this year to divide the mackerel and hake catch"
SAMPLE_CHROME = (
    "Skip to main content",
    "Avatar of Tidewater Post",
    "412 3",
    "Continue Reading",
    "Tidewater Post App",
)
SAMPLE_PERSONS = ("Helena Carvalho", "Declan Brophy", "Anna Lindberg", "Inês Duarte", "Pablo Ferreira")
SAMPLE_PLACES = ("Lisbon", "Portugal", "Spain", "Ireland", "Norway", "Vigo")


def sample_page() -> Path:
    """The sample page shipped in tests/pages/."""
    return SAMPLE_PAGE
