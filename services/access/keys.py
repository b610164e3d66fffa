"""API key use cases: create one (shown once), list the org's, revoke one everywhere."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from engine.refusals import Refusal, Refused
from persistence import audit
from persistence.access import apikeys
from services.unit_of_work import Tenants, UnitsOfWork


class RevokedKeys(Protocol):
    """Who must learn at once that a key is revoked (every gateway process's key cache: gateway/auth.py)."""

    async def announce_revoked(self, record: apikeys.ApiKeyRecord) -> None: ...


async def create_key(
    units: UnitsOfWork,
    org_id: str,
    actor: audit.Actor,
    *,
    name: str,
    scopes: Sequence[str],
    kind: str,
    expires_at: datetime | None,
    created_by: str,
) -> tuple[apikeys.ApiKeyRecord, str]:
    """The new key and its plaintext (shown once, kept nowhere); ``apikeys.KeyRejected`` names a bad field."""
    async with units.begin(org_id, actor) as uow:
        record, plaintext = await apikeys.create_api_key(
            uow.db, name, list(scopes), kind=kind, expires_at=expires_at, created_by=created_by
        )
        uow.record(audit.Change("api_key.create", "api_key", record.id, after=apikeys.audit_view(record)))
    return record, plaintext


async def list_keys(tenants: Tenants, org_id: str) -> list[apikeys.ApiKeyRecord]:
    async with tenants.tenant(org_id) as db:
        return await apikeys.list_api_keys(db)


async def revoke_key(
    units: UnitsOfWork, revoked: RevokedKeys, org_id: str, actor: audit.Actor, key_id: str
) -> apikeys.ApiKeyRecord:
    """Revoke the org's key (again: nothing changes, nothing is audited), then tell every process."""
    async with units.begin(org_id, actor) as uow:
        revocation = await apikeys.revoke_api_key(uow.db, key_id)
        if revocation is None:  # another org's key is as unknown as a made-up one
            raise Refused(Refusal.API_KEY_NOT_FOUND, "no such API key", {"key_id": key_id})
        if revocation.newly:
            record = revocation.record
            after = apikeys.audit_view(record)
            uow.record(audit.Change("api_key.revoke", "api_key", record.id, before={"revoked_at": None}, after=after))
    await revoked.announce_revoked(revocation.record)
    return revocation.record
