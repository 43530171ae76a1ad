"""The intermediate result of an extractor, before the shared post-processing of the clean stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from schemas.cleaned import RemovalReason

if TYPE_CHECKING:
    from workers.stages.cleaning.ensemble import EnsembleModel
    from workers.stages.cleaning.linemodel import LineModel


@dataclass(frozen=True, slots=True)
class CleanOptions:
    """Switches of the clean stage, for the benchmark's ablation and k-fold runs; defaults are production.

    `line_model` replaces the shipped text-dump line model (a model trained on other folds).
    `html_repeats` is off: removing repeated paragraphs of HTML pages lowered the held-out F1 of
    `bench/clean_eval.py` (0.978 without, 0.975 with; the extractors already keep one copy).
    `ensemble` off runs the clean-1.2 design on HTML (trafilatura checked against readability, no
    block model), for comparison; `ensemble_model` replaces the shipped ensemble model (a model
    fitted on other folds). `second_opinion` only applies with `ensemble` off. `chrome_lines` (the
    chrome-line rules run again on the ensemble's text) is off: the model already weighs the rules'
    vote, and the rules after it lowered the held-out F1 (AEB k-fold 0.977 without, 0.974 with;
    dragnet-dev chose it off on both halves). They always run on a fallback and with `ensemble` off.
    """

    split_columns: bool = True
    use_line_model: bool = True
    line_model: LineModel | None = None
    second_opinion: bool = True
    chrome_lines: bool = False
    html_repeats: bool = False
    dump_repeats: bool = True
    ensemble: bool = True
    ensemble_model: EnsembleModel | None = None


@dataclass(slots=True)
class Extraction:
    """Paragraphs and metadata found by one extractor, with what it dropped and why."""

    paragraphs: list[str]
    removed: list[tuple[RemovalReason, str]] = field(default_factory=list)
    title: str | None = None
    authors: list[str] = field(default_factory=list)
    published_at: datetime | None = None
    updated_at: datetime | None = None
    section: str | None = None
    site_name: str | None = None
    language: str | None = None
    url: str | None = None
    page_lines: list[str] = field(default_factory=list)
    """Every visible line of an HTML page, for the audit of what the extractors left out."""
    fallbacks: list[list[str]] = field(default_factory=list)
    """Other extractors' paragraphs, in order of preference, for a page where these hold no prose."""
    prose_elsewhere: bool = False
    """Another extractor found a prose paragraph on the page: it has an article (no `no_content`)."""
