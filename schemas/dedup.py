"""What the dedup stage decides about one cleaned article."""

from typing import Literal

from pydantic import Field

from schemas._base import Frozen

VerdictKind = Literal["unique", "exact_duplicate", "near_duplicate", "revision"]


class DedupVerdict(Frozen):
    """Whether an article repeats one seen before, of which, how closely and why."""

    article_id: str
    version: str = Field(description="Dedup version that produced this verdict.")
    kind: VerdictKind
    duplicate_of: str | None = Field(default=None, description="The article this one repeats or revises.")
    cluster_id: str = Field(description="Canonical article of the cluster (the article itself if unique).")
    similarity: float | None = Field(default=None, ge=0.0, le=1.0)
    reason: str = Field(description="Why: which key or measure matched, e.g. 'text_key', 'canonical_url'.")
    canonical_url: str | None = None
    text_key: str = Field(description="Hash of the normalised text.")
    params: dict[str, float | int | str] = Field(default_factory=dict)
    supersedes: str | None = Field(
        default=None,
        description="Former canonical of the cluster this article now heads (it was published earlier); "
        "records whose cluster_id is that article move to this one.",
    )
