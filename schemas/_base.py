"""The one model configuration every boundary shares: strict, frozen, closed."""

from pydantic import BaseModel, ConfigDict


class Frozen(BaseModel):
    """Base for every boundary model: strict types, immutable, unknown fields rejected."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")
