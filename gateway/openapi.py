"""OpenAPI 3.1 from the app's route table: each endpoint carries an ``Operation`` (its docs, scope and bodies),
and the schemas come from the pydantic models, so the description cannot drift from what the code validates."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.routing import BaseRoute, Route, WebSocketRoute

from gateway.error_models import ErrorOut

OPENAPI_VERSION = "3.1.0"
API_TITLE = "VoelgoedEvents API"
API_VERSION = "1"
_REF_TEMPLATE = "#/components/schemas/{model}"
_PARAM_RE = re.compile(r"\{([^}:]+)(?::[^}]+)?\}")

_ERROR_MEANINGS = {
    400: "malformed JSON",
    401: "no or bad API key",
    403: "the key lacks the route's scope",
    404: "unknown (or another organization's) object",
    409: "conflict with the current state",
    410: "the hold has expired",
    413: "body over 64 KiB (or too many commands)",
    415: "the body is not JSON",
    422: "validation failed: details.fields names each bad field",
    429: "over a rate limit (details.limit names it); nothing applied; see Retry-After",
    503: "temporarily unable; nothing applied; see Retry-After",
}

EndpointT = TypeVar("EndpointT", bound=Callable[..., Any])


@dataclass(frozen=True)
class Operation:
    summary: str
    status: int = 200
    response: type[BaseModel] | None = None
    request: type[BaseModel] | None = None
    query: type[BaseModel] | None = None  # the query parameters, one field each
    scope: str | None = None
    errors: tuple[int, ...] = ()
    idempotent: bool = False
    websocket: bool = False
    media_type: str = "application/json"
    request_media_types: tuple[str, ...] = ()  # bodies it takes besides JSON (a layout's text/csv), as strings
    description: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)


def operation(**kwargs: Any) -> Callable[[EndpointT], EndpointT]:
    """Attach the OpenAPI description to a route endpoint."""

    def attach(endpoint: EndpointT) -> EndpointT:
        endpoint.__openapi__ = Operation(**kwargs)  # type: ignore[attr-defined]
        return endpoint

    return attach


def operation_of(route: BaseRoute) -> Operation | None:
    endpoint = getattr(route, "endpoint", None)
    found = getattr(endpoint, "__openapi__", None)
    return found if isinstance(found, Operation) else None


def documented_methods(route: BaseRoute) -> list[str]:
    """The lower-case OpenAPI methods a route serves (a websocket is documented as its GET upgrade)."""
    if isinstance(route, WebSocketRoute):
        return ["get"]
    if isinstance(route, Route):
        return sorted(m.lower() for m in (route.methods or ()) if m != "HEAD")
    return []


def build_openapi(routes: Iterable[BaseRoute]) -> dict[str, Any]:
    routes = list(routes)
    models = _models(routes)
    _, definitions = models_json_schema([(m, "validation") for m in models], ref_template=_REF_TEMPLATE)
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        op = operation_of(route)
        path = getattr(route, "path", None)
        if op is None or path is None:
            continue
        for method in documented_methods(route):
            paths.setdefault(_PARAM_RE.sub(r"{\1}", path), {})[method] = _operation_json(route, op, path)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": API_TITLE, "version": API_VERSION},
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer", "description": "vk_<prefix>_<secret>"}},
        },
    }


def _models(routes: list[BaseRoute]) -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = [ErrorOut]
    for route in routes:
        op = operation_of(route)
        if op is None:
            continue
        for model in (op.request, op.response):
            if model is not None and model not in found:
                found.append(model)
    return found


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": _REF_TEMPLATE.format(model=model.__name__)}


def _operation_json(route: BaseRoute, op: Operation, path: str) -> dict[str, Any]:
    description = op.description
    if op.websocket:
        description = (description + " WebSocket: connect with an Upgrade request.").strip()
    result: dict[str, Any] = {
        "summary": op.summary,
        "operationId": f"{getattr(route, 'name', 'route')}",
        "parameters": [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _PARAM_RE.findall(path)
        ],
        "responses": _responses(op),
    }
    if description:
        result["description"] = description
    if op.tags:
        result["tags"] = list(op.tags)
    if op.scope is not None:
        result["security"] = [{"apiKey": []}]
        result["x-scope"] = op.scope
    if op.idempotent:
        result["parameters"].append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "minLength": 1, "maxLength": 200},
                "description": "1-200 printable ASCII characters; replays the first response for 24 h",
            }
        )
    if op.websocket:
        result["x-websocket"] = True
        result["parameters"].append(
            {
                "name": "key",
                "in": "query",
                "required": False,
                "schema": {"type": "string"},
                "description": "the API key, for clients that cannot set the Authorization header",
            }
        )
    if op.request is not None:
        result["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(op.request)}}}
        for media_type in op.request_media_types:
            result["requestBody"]["content"][media_type] = {"schema": {"type": "string"}}
    if op.query is not None:
        result["parameters"] += _query_parameters(op.query)
    return result


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema()
    required = set(schema.get("required", ()))
    parameters = []
    for name, prop in schema["properties"].items():
        parameter: dict[str, Any] = {"name": name, "in": "query", "required": name in required}
        description = prop.pop("description", None)
        prop.pop("title", None)
        # An optional parameter is absent, never null: document only its non-null form.
        branches = [b for b in prop.pop("anyOf", ()) if b != {"type": "null"}]
        if len(branches) == 1:
            prop.update(branches[0])
        elif branches:
            prop["anyOf"] = branches
        if prop.get("default", 0) is None:
            del prop["default"]
        parameter["schema"] = prop
        if description:
            parameter["description"] = description
        parameters.append(parameter)
    return parameters


def _responses(op: Operation) -> dict[str, Any]:
    success: dict[str, Any] = {"description": "success"}
    if op.response is not None:
        success["content"] = {op.media_type: {"schema": _ref(op.response)}}
    elif op.media_type != "application/json":
        success["content"] = {op.media_type: {"schema": {"type": "string"}}}
    responses: dict[str, Any] = {str(op.status): success}
    errors = set(op.errors)
    if op.scope is not None:
        errors |= {401, 403, 429, 503}
    if op.request is not None:
        errors |= {400, 413, 415, 422}
    if op.idempotent or op.query is not None:
        errors.add(422)
    for status in sorted(errors):
        responses[str(status)] = {
            "description": _ERROR_MEANINGS.get(status, "error"),
            "content": {"application/json": {"schema": _ref(ErrorOut)}},
        }
    return responses
