"""The access domain's request and response bodies: API keys, sessions, invitations and members."""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal

import email_validator
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    model_validator,
)
from pydantic.json_schema import JsonDict, JsonValue
from pydantic_core import PydanticCustomError

from engine.access import passwords
from engine.access.rules import PUBLISHABLE_SCOPES, ROLES, SCOPES, KeyKind
from gateway.fields import DisplayName, UtcTime
from gateway.parsing import RequestModel, cross_field_error
from gateway.rendering import Timestamp


def _known_scope(scope: str) -> str:
    if scope not in SCOPES:
        raise PydanticCustomError("unknown_scope", "unknown scope; known scopes: {known}", {"known": ", ".join(SCOPES)})
    return scope


# The validators keep their messages; the schema names the same sets (OpenAPI: enum, uniqueItems).
Scope = Annotated[str, AfterValidator(_known_scope), Field(json_schema_extra={"enum": list(SCOPES)})]
# A publishable key carries buying scopes only (the validator below); the same rule for OpenAPI.
_BUYING_SCOPES: list[JsonValue] = [scope.value for scope in sorted(PUBLISHABLE_SCOPES)]
_PUBLISHABLE_RULE: JsonDict = {
    "anyOf": [
        {"properties": {"kind": {"const": KeyKind.SECRET.value}}},
        {"properties": {"scopes": {"items": {"enum": _BUYING_SCOPES}}}},
    ]
}


class ApiKeyCreate(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            **_PUBLISHABLE_RULE,
            "examples": [
                {"name": "box office", "scopes": ["events:read", "inventory:hold"]},
                {"name": "checkout", "kind": "publishable", "scopes": ["inventory:read", "inventory:hold"]},
            ],
        }
    )

    name: DisplayName
    scopes: Annotated[
        list[Scope], Field(min_length=1, max_length=len(SCOPES), json_schema_extra={"uniqueItems": True})
    ]
    kind: Literal["secret", "publishable"] = Field(
        default="secret", description="publishable: a checkout front-end's key, buying scopes only"
    )
    expires_at: UtcTime | None = Field(
        default=None,
        description="when the key stops working; in the future, at most 730 days ahead, and never after the "
        "creating key's own expiry (absent: that expiry, or never for a key made by a person or a key that never "
        "expires)",
    )

    @model_validator(mode="after")
    def _distinct_scopes(self) -> ApiKeyCreate:
        if len(set(self.scopes)) != len(self.scopes):
            raise cross_field_error([("scopes", "repeats a scope")])
        if self.kind == KeyKind.PUBLISHABLE:
            beyond = sorted(set(self.scopes) - PUBLISHABLE_SCOPES)
            if beyond:
                allowed = ", ".join(sorted(PUBLISHABLE_SCOPES))
                raise cross_field_error([("scopes", f"a publishable key may only carry {allowed}, not {beyond}")])
        return self


class ApiKeyInfo(BaseModel):
    """A key as listed: never its secret or hash."""

    id: str
    name: str
    kind: Literal["secret", "publishable"]
    prefix: str = Field(description='the public part of "vk_<prefix>_<secret>"')
    scopes: list[str]
    created_at: Timestamp
    created_by: str | None = Field(description='"user:<id>", "key:<id>" or "system:<what>"')
    expires_at: Timestamp | None
    revoked_at: Timestamp | None
    last_used_at: Timestamp | None = Field(description="minute-accurate; written in the background")


class ApiKeyList(BaseModel):
    api_keys: list[ApiKeyInfo]


class ApiKeyOut(BaseModel):
    path_parameter: ClassVar[str] = "key_id"  # its id is the {key_id} of DELETE /v1/api-keys/{key_id} (OpenAPI links)

    id: str
    name: str
    kind: Literal["secret", "publishable"]
    prefix: str
    scopes: list[str]
    created_at: Timestamp
    created_by: str
    expires_at: Timestamp | None
    key: str | None = Field(
        description="the plaintext key, shown once: null in an Idempotency-Key replay (the secret is kept nowhere)"
    )


def _known_role(role: str) -> str:
    if role not in ROLES:
        raise PydanticCustomError("unknown_role", "unknown role; known roles: {known}", {"known": ", ".join(ROLES)})
    return role


def _acceptable_password(password: str) -> str:
    problem = passwords.password_problem(password)
    if problem is not None:
        raise PydanticCustomError("weak_password", problem)
    return password


RoleName = Annotated[str, AfterValidator(_known_role), Field(json_schema_extra={"enum": list(ROLES)})]

def _any_case(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word)


# Beyond RFC 5321 (OpenAPI's "email" format), the validator (email-validator) refuses special-use domains: the
# schema says so too.
_SPECIAL_USE_DOMAIN = "|".join(_any_case(name) for name in email_validator.SPECIAL_USE_DOMAIN_NAMES)
Email = Annotated[
    EmailStr,
    StringConstraints(max_length=254),
    Field(json_schema_extra={"not": {"pattern": f"[.@](?:{_SPECIAL_USE_DOMAIN})$"}}),
]

OrgId = Annotated[str, StringConstraints(pattern=r"^org_[0-9a-f]{32}$")]


# Logging in checks the length bound only: the policy may have changed since the password was set.
PresentedPassword = Annotated[str, StringConstraints(min_length=1, max_length=passwords.password_chars_max)]

# The policy's rule (engine/access/passwords.py) as the schema states it: its lengths, and not only whitespace.
NewPassword = Annotated[
    str,
    AfterValidator(_acceptable_password),
    Field(
        json_schema_extra={
            "minLength": passwords.password_chars_min,
            "maxLength": passwords.password_chars_max,
            "pattern": passwords.NOT_ONLY_WHITESPACE_PATTERN,
        }
    ),
]

OpaqueToken = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class SessionCreate(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"email": "ana@example.com", "password": "correct horse battery staple"}]}
    )

    email: Email
    password: PresentedPassword
    org_id: OrgId | None = Field(default=None, description="required when the person belongs to several orgs")


class SessionRefresh(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"refresh_token": "vr_<session>_<secret>"}]})

    refresh_token: OpaqueToken = Field(description="vr_<session>_<secret>, from the login or the last refresh")


class InvitationAccept(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"token": "vi_<invitation>_<secret>", "password": "correct horse battery staple"}]
        }
    )

    token: OpaqueToken = Field(description="vi_<invitation>_<secret>, shown once to whoever invited the person")
    password: NewPassword = Field(
        description=f"{passwords.password_chars_min}-{passwords.password_chars_max} characters: the new "
        "password when the invitation created the account, otherwise the person's existing password"
    )


class MemberCreate(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"email": "ana@example.com", "role": "analyst"}]})

    email: Email
    role: RoleName


class MemberUpdate(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"role": "scanner"}]})

    role: RoleName


class SessionOut(BaseModel):
    access_token: str = Field(description="a signed JWT; send it as Authorization: Bearer <token>")
    token_type: Literal["bearer"]
    expires_in: int = Field(description="seconds the access token lives")
    refresh_token: str = Field(description="single use: each refresh returns a new one")
    session_id: str
    user_id: str
    org_id: str
    role: str


class InvitationAccepted(BaseModel):
    user_id: str
    email: str


class MemberOut(BaseModel):
    user_id: str
    email: str
    role: str
    status: Literal["active", "pending"] = Field(
        description="pending until the person accepts the organization's invitation; a pending member cannot log in"
    )
    created_at: Timestamp


class MemberList(BaseModel):
    members: list[MemberOut]


class InvitationOut(BaseModel):
    token: str | None = Field(
        description="the invitation token, shown once: pass it to the person privately; null in an Idempotency-Key "
        "replay (the token is kept nowhere)"
    )
    expires_at: Timestamp


class MemberCreated(MemberOut):
    invitation: InvitationOut | None = Field(
        description="the invitation the person accepts to join (always present from this route)"
    )

