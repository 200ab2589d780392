"""Column types: JSON validated by a pydantic model on every write and every read."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import JSON
from sqlalchemy.types import TypeDecorator


class PydanticJSON(TypeDecorator[BaseModel]):
    """A JSON column holding one pydantic model (``extra="forbid"`` models refuse typos).

    Writes accept the model or a plain mapping (validated); reads return the model, so a row
    edited by hand into something invalid fails loudly where it is read, with the field's
    message, instead of silently falling back to defaults.
    """

    impl = JSON
    cache_ok = True

    def __init__(self, model: type[BaseModel], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.model = model

    def _validate(self, value: Any) -> BaseModel:
        if isinstance(value, self.model):
            return value
        try:
            return self.model.model_validate(value)
        except ValidationError as exc:
            raise ValueError(f"invalid {self.model.__name__}: {exc}") from None

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        return self._validate(value).model_dump(mode="json")

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        return self._validate(value)

    def coerce_compared_value(self, op: Any, value: Any) -> Any:
        return JSON()
