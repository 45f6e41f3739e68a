"""The base class every Livermore wire payload shares."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Message(BaseModel):
    """A JSON payload with snake_case fields, validated on both sides of Redis."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)
