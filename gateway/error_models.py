"""The model of the one error body, ``{"error": {"code", "message", "details"}}`` (gateway/errors.py
renders it), for OpenAPI and the tests."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: dict[str, Any]


class ErrorOut(BaseModel):
    error: ErrorDetail

