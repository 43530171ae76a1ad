"""What the tag stage produces: named entities, canonical within the article, with every mention."""

from typing import Literal

from pydantic import Field

from schemas._base import Frozen

EntityLabel = Literal["PERSON", "ORG", "GPE", "LOC", "NORP", "FAC", "EVENT", "LAW", "PRODUCT", "WORK_OF_ART"]


class Mention(Frozen):
    """One occurrence of an entity: character offsets into the cleaned text (end exclusive)."""

    start: int = Field(ge=0)
    end: int = Field(ge=0)
    text: str


class Entity(Frozen):
    """One entity of an article under its canonical name, with its salience and mentions."""

    name: str
    label: EntityLabel
    count: int = Field(ge=1)
    first_position: int = Field(ge=0, description="Offset of the first mention.")
    in_title: bool = False
    salience: float = Field(default=0.0, ge=0.0)
    country_code: str | None = Field(
        default=None, description="ISO 3166-1 alpha-2 for countries and demonyms."
    )
    mentions: tuple[Mention, ...]


class UntaggedPart(Frozen):
    """A run of paragraphs of a mixed-language article that no model read, and why."""

    start: int = Field(ge=0, description="Offset of the run's first character in the cleaned text.")
    end: int = Field(ge=0, description="Offset just past the run's last character.")
    language: str | None = Field(default=None, description="The run's language, as detected.")
    reason: str = Field(description="Why it was not tagged: \"no model for 'de'\".")


class TaggedArticle(Frozen):
    """Entities of one article, most salient first, and the model that found them."""

    article_id: str
    version: str = Field(description="Tagger version (code), independent of the model.")
    model: str
    model_version: str
    entities: tuple[Entity, ...] = ()
    skipped: str | None = Field(default=None, description="Why tagging was skipped, if it was.")
    language: str | None = Field(
        default=None, description="Language the article was tagged in (or found to be in, when untagged)."
    )
    untagged: str | None = Field(
        default=None,
        description="Why the article has no entities though it is no skipped duplicate: \"no model for 'de'\", "
        "\"language unknown, detector not confident ('en' 0.41 < 0.9)\".",
    )
    untagged_from: int | None = Field(
        default=None,
        ge=0,
        description="Offset from which the text was not tagged (the model reads the first 100,000 characters).",
    )
    untagged_parts: tuple[UntaggedPart, ...] = Field(
        default=(),
        description="Runs of paragraphs in another language that no model read (an article mixing "
        "languages: each run goes to its language's model, or is listed here with the reason).",
    )
