"""Request bodies: strict pydantic models (no "5" for 5, unknown fields refused) and the one way a body becomes
a model or an API error: 400 for malformed JSON, 422 naming every bad field (at most ``field_errors_max``).

A number with a zero fraction (``2.0``) is the integer it equals, as JSON and JSON Schema read it (an OpenAPI
"integer" admits it): ``RequestModel`` turns one into an int for its int fields before the strict check.

Rules that span fields are the engine's (they return problems: engine/catalog/rules.py, ...), which model
validators turn into one ``PydanticCustomError`` whose ``ctx["fields"]`` lists ``[field, message]`` pairs, so
the 422 still names each bad field."""

from __future__ import annotations

import functools
import types
import typing
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import PydanticCustomError

from engine.catalog import rules as catalog
from gateway.errors import ApiError, MalformedJson, ValidationFailed

field_errors_max = 100

ModelT = TypeVar("ModelT", bound=BaseModel)


def cross_field_error(problems: list[tuple[str, str]]) -> PydanticCustomError:
    """One error carrying several (field path relative to the model, message) problems."""
    summary = "; ".join(f"{field}: {message}" for field, message in problems)
    return PydanticCustomError("invalid_fields", summary, {"fields": [list(p) for p in problems]})


def refuse_problems(problems: list[catalog.Problem]) -> None:
    """The engine's problems as the one cross-field error (none: nothing to refuse)."""
    if problems:
        raise cross_field_error([(p.field, p.message) for p in problems])


def problems_refused(problems: list[catalog.Problem]) -> ValidationFailed:
    """The 422 for what a use case's rules refuse once the body has parsed (an unknown zone of the layout, a
    schedule that no longer fits): each problem a field of type "invalid", as a rule beyond the body's schema."""
    return ValidationFailed(
        details={"fields": [{"field": p.field, "message": p.message, "type": "invalid"} for p in problems]}
    )


class RequestModel(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _integral_numbers_are_integers(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        names = _int_fields(cls)
        if not any(isinstance(data.get(name), float) for name in names):
            return data
        return {key: _as_int(value) if key in names else value for key, value in data.items()}


def _as_int(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


@functools.cache
def _int_fields(model: type[BaseModel]) -> frozenset[str]:
    """The fields of ``model`` that hold an int (or an int or None)."""
    return frozenset(name for name, info in model.model_fields.items() if _is_int(info.annotation))


def _is_int(annotation: Any) -> bool:
    if annotation is int:
        return True
    if typing.get_origin(annotation) is typing.Annotated:
        return _is_int(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_is_int(arg) for arg in typing.get_args(annotation))
    return False


def parse_body(model: type[ModelT], raw: bytes) -> ModelT:
    """The validated body, or the API error: 400 for malformed JSON, 422 naming every bad field."""
    try:
        return model.model_validate_json(raw)
    except PydanticValidationError as error:
        raise error_for_validation(error) from None


def parse_query(model: type[ModelT], pairs: typing.Iterable[tuple[str, str]]) -> ModelT:
    """Query parameters (``request.query_params.multi_items()``) as ``model``: 422 naming each bad (unknown,
    repeated or invalid) one."""
    given: dict[str, str] = {}
    repeated: list[dict[str, str]] = []
    for name, value in pairs:
        if name in given:
            repeated.append({"field": name, "message": "given more than once", "type": "repeated"})
        given[name] = value
    if repeated:
        raise ValidationFailed(details={"fields": repeated})
    try:
        return model.model_validate(given)
    except PydanticValidationError as error:
        raise error_for_validation(error) from None


def error_for_validation(error: PydanticValidationError) -> ApiError:
    problems = error.errors(include_url=False, include_input=False)
    malformed = next((p for p in problems if p["type"] == "json_invalid"), None)
    if malformed is not None:
        return MalformedJson(f"the request body is not valid JSON: {malformed['msg'].removeprefix('Invalid JSON: ')}")
    fields: list[dict[str, str]] = []
    for problem in problems:
        fields += _field_entries(problem)
    details: dict[str, Any] = {"fields": fields[:field_errors_max]}
    if len(fields) > field_errors_max:
        details["fields_truncated"] = True
    return ValidationFailed(details=details)


def _field_entries(problem: Any) -> list[dict[str, str]]:
    base = [str(part) for part in problem["loc"]]
    nested = (problem.get("ctx") or {}).get("fields")
    if problem["type"] == "invalid_fields" and nested:
        return [{"field": _path([*base, field]), "message": message, "type": "invalid"} for field, message in nested]
    return [{"field": _path(base), "message": problem["msg"], "type": problem["type"]}]


def _path(parts: list[str]) -> str:
    return ".".join(parts) if parts else "body"

