"""OpenAPI 3.1 from the app's route table: each endpoint carries an ``Operation`` (its docs, scope and bodies),
and the schemas come from the pydantic models, so the description cannot drift from what the code validates.

What the document says beyond the bodies, and where it comes from:
- path parameters: their id formats (gateway/fields.py ``PATH_PARAMETERS``; a malformed id answers 404 like an
  unknown one), the Idempotency-Key header's format (gateway/idempotency.py), the bearer credential;
- every error status a route can answer, each with its error body model (gateway/error_models.py) and the
  headers that come with it (``Retry-After`` on 429 and 503, ``Allow`` on 405);
- links between operations: an answer's ``<name>_id`` field (or the ``id`` of a model that names its
  ``path_parameter``) feeds every operation whose path takes ``{<name>_id}``, so a client (or a fuzzer) can walk
  create event -> its holds -> confirm without being told.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.routing import BaseRoute, Route, WebSocketRoute

from gateway.error_models import ErrorOut, error_model
from gateway.fields import PATH_PARAMETERS
from gateway.idempotency import KEY_PATTERN

OPENAPI_VERSION = "3.1.0"
API_TITLE = "VoelgoedEvents API"
API_VERSION = "1"
SECURITY_SCHEME = "apiKey"
WEBSOCKET_TAG = "websocket"  # every WebSocket route carries it (besides x-websocket)
_REF_TEMPLATE = "#/components/schemas/{model}"
_PARAM_RE = re.compile(r"\{([^}:]+)(?::[^}]+)?\}")
_ID_FIELD_RE = re.compile(r"^[a-z][a-z0-9_]*_id$")

_ERROR_MEANINGS = {
    400: "malformed JSON",
    401: "no or bad credential",
    403: "the credential lacks the route's scope",
    404: "unknown (or another organization's, or malformed) object",
    405: "the path does not take this method (see Allow)",
    409: "conflict with the current state",
    410: "gone: the hold or invitation has expired",
    413: "body over 64 KiB",
    415: "the body is not JSON",
    422: "the request breaks a rule: details.fields names each bad field",
    426: "a WebSocket route called without the upgrade",
    429: "over a rate limit (details.limit names it); nothing applied; see Retry-After",
    503: "temporarily unable; see Retry-After",
}
_RETRY_AFTER = {
    "description": "seconds to wait before retrying",
    "required": True,
    "schema": {"type": "string", "pattern": "^[1-9][0-9]*$"},
}
_ERROR_HEADERS: dict[int, dict[str, Any]] = {
    405: {"Allow": {"description": "the methods the path takes", "required": True, "schema": {"type": "string"}}},
    426: {"Upgrade": {"description": "websocket", "required": True, "schema": {"type": "string"}}},
    429: {"Retry-After": _RETRY_AFTER},
    503: {"Retry-After": _RETRY_AFTER},
}
_REPLAYED_HEADER = {
    "Idempotent-Replayed": {
        "description": "true when this is the stored answer of an earlier request with the same Idempotency-Key",
        "required": False,
        "schema": {"type": "string", "enum": ["true"]},
    }
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
    response_media_types: tuple[str, ...] = ()  # what else it may answer, as strings (a layout as text/csv)
    description: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)
    # A credential is needed (a scope implies one; logging out needs one without a scope).
    authenticated: bool = False
    # What a link into this operation puts in its body, from the linking answer: field -> a JSON pointer into
    # that answer (used when the answer has it), or a plain value (sent along with the pointers that apply).
    linked_body: Mapping[str, Any] = field(default_factory=dict)

    @property
    def needs_credential(self) -> bool:
        return self.authenticated or self.scope is not None


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


def template_of(path: str) -> str:
    """The OpenAPI path of a router path (``{id:int}`` -> ``{id}``)."""
    return _PARAM_RE.sub(r"{\1}", path)


@dataclass(frozen=True)
class _Documented:
    route: BaseRoute
    op: Operation
    path: str  # the OpenAPI template
    method: str

    @property
    def operation_id(self) -> str:
        return str(getattr(self.route, "name", "route"))

    @property
    def parameters(self) -> list[str]:
        return _PARAM_RE.findall(self.path)


def build_openapi(routes: Iterable[BaseRoute]) -> dict[str, Any]:
    documented = [
        _Documented(route, op, template_of(path), method)
        for route in routes
        if (op := operation_of(route)) is not None and (path := getattr(route, "path", None)) is not None
        for method in documented_methods(route)
    ]
    ops = [d.op for d in documented]
    inputs = _unique(m for op in ops for m in (op.request,) if m is not None)
    outputs = _unique(
        [ErrorOut, *(m for op in ops for m in (op.response,) if m is not None), *_error_models(ops)]
    )
    keyed = [(m, "validation") for m in inputs] + [(m, "serialization") for m in outputs]
    names, definitions = models_json_schema(keyed, ref_template=_REF_TEMPLATE)  # type: ignore[arg-type]
    refs = {key: value for key, value in names.items()}
    paths: dict[str, dict[str, Any]] = {}
    for doc in documented:
        paths.setdefault(doc.path, {})[doc.method] = _operation_json(doc, documented, refs)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": API_TITLE, "version": API_VERSION},
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "an API key vk_<prefix>_<secret>, or a person's session access token",
                }
            },
        },
    }


def _unique(models: Iterable[type[BaseModel]]) -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []
    for model in models:
        if model not in found:
            found.append(model)
    return found


_Refs = dict[tuple[Any, Any], dict[str, Any]]


def _ref(refs: _Refs, model: type[BaseModel], mode: str) -> dict[str, Any]:
    return dict(refs[(model, mode)])


def error_statuses(op: Operation) -> list[int]:
    """Every error status the operation can answer: its own, and those of the checks every route of its kind
    runs (gateway/endpoints.py's order of checks)."""
    errors = set(op.errors)
    if op.needs_credential:
        errors |= {401, 403, 429, 503}
    if op.request is not None:
        errors |= {400, 413, 415, 422}
    if op.idempotent:
        errors |= {413, 415, 422}  # the body (even one the route does not read) is read for the fingerprint
    if op.query is not None:
        errors.add(422)
    if op.websocket:
        errors.add(426)
    return sorted(errors)


def _error_models(ops: list[Operation]) -> list[type[BaseModel]]:
    return [error_model(status) for op in ops for status in error_statuses(op)]


def _operation_json(doc: _Documented, documented: list[_Documented], refs: _Refs) -> dict[str, Any]:
    op = doc.op
    description = op.description
    if op.websocket:
        description = (
            description + " WebSocket: connect with an Upgrade request; a plain GET answers 426 (Upgrade: websocket)."
        ).strip()
    result: dict[str, Any] = {
        "summary": op.summary,
        "operationId": doc.operation_id,
        "parameters": [_path_parameter(name) for name in doc.parameters],
        "responses": _responses(doc, documented, refs),
    }
    if description:
        result["description"] = description
    tags = [*op.tags, *((WEBSOCKET_TAG,) if op.websocket else ())]
    if tags:
        result["tags"] = tags
    if op.needs_credential:
        result["security"] = [{SECURITY_SCHEME: []}]
    if op.scope is not None:
        result["x-scope"] = op.scope
    if op.idempotent:
        result["parameters"].append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "pattern": KEY_PATTERN},
                "description": "1-200 printable ASCII characters (spaces inside only: HTTP drops them at the ends); "
                "the same key and request replay the first answer for 24 h (no example: one key for every request "
                "would answer 422 idempotency_key_reused to all but the first)",
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
        result["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(refs, op.request, "validation")}},
        }
        for media_type in op.request_media_types:
            result["requestBody"]["content"][media_type] = {"schema": {"type": "string"}}
    if op.query is not None:
        result["parameters"] += _query_parameters(op.query)
    return result


def _path_parameter(name: str) -> dict[str, Any]:
    known = PATH_PARAMETERS.get(name)
    parameter: dict[str, Any] = {"name": name, "in": "path", "required": True}
    if known is None:
        parameter["schema"] = {"type": "string", "minLength": 1}
        return parameter
    parameter["schema"] = {"type": "string", "pattern": known.pattern}
    parameter["description"] = known.description
    parameter["example"] = known.example
    return parameter


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


def _responses(doc: _Documented, documented: list[_Documented], refs: _Refs) -> dict[str, Any]:
    op = doc.op
    success: dict[str, Any] = {"description": "switching to the WebSocket" if op.websocket else "success"}
    if op.response is not None and not op.websocket:
        success["content"] = {op.media_type: {"schema": _ref(refs, op.response, "serialization")}}
    elif op.response is not None:
        success["description"] += ": the first message is " + op.response.__name__
    elif op.media_type != "application/json":
        success["content"] = {op.media_type: {"schema": {"type": "string"}}}
    for media_type in op.response_media_types:
        success.setdefault("content", {})[media_type] = {"schema": {"type": "string"}}
    if op.idempotent:
        success["headers"] = dict(_REPLAYED_HEADER)
    links = _links(doc, documented)
    if links:
        success["links"] = links
    responses: dict[str, Any] = {"101" if op.websocket else str(op.status): success}
    for status in error_statuses(op):
        answer: dict[str, Any] = {
            "description": _ERROR_MEANINGS.get(status, "error"),
            "content": {"application/json": {"schema": _ref(refs, error_model(status), "serialization")}},
        }
        if status in _ERROR_HEADERS:
            answer["headers"] = _ERROR_HEADERS[status]
        responses[str(status)] = answer
    return responses


def _links(doc: _Documented, documented: list[_Documented]) -> dict[str, Any]:
    """From this answer's ids to every other operation whose path takes them (OpenAPI links)."""
    model = doc.op.response
    if model is None or doc.op.websocket:
        return {}
    sources = {name: f"$response.body#/{name}" for name in model.model_fields if _ID_FIELD_RE.match(name)}
    own_parameter = getattr(model, "path_parameter", None)
    if isinstance(own_parameter, str) and "id" in model.model_fields:
        sources[own_parameter] = "$response.body#/id"
    links: dict[str, Any] = {}
    for target in documented:
        if target is doc or target.op.websocket:
            continue
        given = {name: sources[name] for name in target.parameters if name in sources}
        if given:
            link: dict[str, Any] = {
                "operationId": target.operation_id,
                "parameters": given,
                "description": f"{target.method.upper()} {target.path} with this answer's " + ", ".join(given),
            }
            body = _linked_body(target.op, model)
            if body:
                link["requestBody"] = body
            links[f"{target.operation_id}_{target.method}"] = link
    return links


def _linked_body(target: Operation, model: type[BaseModel]) -> dict[str, Any]:
    """The target's ``linked_body`` from this answer: its pointers the answer has, with the plain values."""
    pointers = {
        name: f"$response.body#{value}"
        for name, value in target.linked_body.items()
        if isinstance(value, str) and value.startswith("/") and value.split("/")[1] in model.model_fields
    }
    if not pointers:
        return {}
    plain = {name: value for name, value in target.linked_body.items() if not isinstance(value, str)}
    return {**plain, **pointers}
