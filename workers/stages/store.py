"""The store stage's pure part: assemble the stored article from the earlier stages' records."""

from schemas import (
    CleanedArticle,
    DedupVerdict,
    RawArticle,
    StoredArticle,
    StoredEntity,
    StoredMention,
    TaggedArticle,
)

VERSION = "store-1.0"


def assemble(
    raw: RawArticle, cleaned: CleanedArticle, verdict: DedupVerdict, tagged: TaggedArticle | None
) -> StoredArticle:
    """The article as stored: cleaned text and metadata, dedup verdict, entities and stage versions. Pure."""
    versions = {"clean": cleaned.version, "dedup": verdict.version, "store": VERSION}
    entities: tuple[StoredEntity, ...] = ()
    if tagged is not None:
        versions["tag"] = tagged.version
        versions["tag_model"] = f"{tagged.model}-{tagged.model_version}"
        entities = tuple(
            StoredEntity(
                name=e.name,
                label=e.label,
                count=e.count,
                mentions=tuple(StoredMention(start=m.start, end=m.end, text=m.text) for m in e.mentions),
            )
            for e in tagged.entities
        )
    return StoredArticle(
        id=cleaned.article_id,
        url=raw.url,
        source=raw.source,
        title=cleaned.title,
        published_at=cleaned.published_at or raw.published_at,
        # The language the text was tagged in (an English page declared lang="fr" is stored as "en").
        language=(tagged.language if tagged is not None and tagged.language else None)
        or cleaned.language
        or raw.language,
        text=cleaned.text,
        dateline=cleaned.dateline,
        credits=cleaned.credits,
        authors=cleaned.authors,
        duplicate_of=verdict.duplicate_of,
        dedup=verdict.kind,
        cluster_id=verdict.cluster_id,
        entities=entities,
        versions=versions,
    )
