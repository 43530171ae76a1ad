"""Pydantic models for every boundary of the pipeline: raw → cleaned → verdict → tagged → stored."""

from schemas.cleaned import CleanedArticle, Removal, RemovalReason
from schemas.dedup import DedupVerdict, VerdictKind
from schemas.messages import StageBatch, StageMessage
from schemas.raw import ContentType, RawArticle
from schemas.stored import StoredArticle, StoredEntity, StoredMention
from schemas.tagged import Entity, EntityLabel, Mention, TaggedArticle, UntaggedPart

__all__ = [
    "CleanedArticle",
    "ContentType",
    "DedupVerdict",
    "Entity",
    "EntityLabel",
    "Mention",
    "RawArticle",
    "Removal",
    "RemovalReason",
    "StageBatch",
    "StageMessage",
    "StoredArticle",
    "StoredEntity",
    "StoredMention",
    "TaggedArticle",
    "UntaggedPart",
    "VerdictKind",
]
