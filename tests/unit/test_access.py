"""engine/access/rules.py: roles, scopes and key kinds as data, and the rules over them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.access.rules import (
    KEY_KINDS,
    OWNER_SCOPES,
    PUBLISHABLE_SCOPES,
    ROLE_PERMISSIONS,
    ROLES,
    SCOPES,
    KeyKind,
    MemberChange,
    Role,
    first_password_unclaimed,
    grant_refusal,
    invitation_password_refusal,
    invitation_refusal,
    invitation_sets_password,
    key_scope_problems,
    last_owner_refusal,
    may_assign_role,
    member_change_refusal,
    owners_left,
    permissions_of,
    scopes_beyond,
    stale_actor_refusal,
)
from engine.refusals import Refusal

scope_sets = st.frozensets(st.sampled_from(SCOPES))
roles = st.sampled_from(ROLES)
maybe_roles = st.one_of(st.none(), roles)
kinds = st.sampled_from(KEY_KINDS)


def test_every_role_has_permissions_and_owner_and_admin_have_all() -> None:
    assert set(ROLE_PERMISSIONS) == set(Role)
    assert permissions_of("owner") == frozenset(SCOPES) == permissions_of("admin")
    assert set(OWNER_SCOPES) == set(SCOPES)
    for role in ROLES:
        assert permissions_of(role) <= frozenset(SCOPES)
        assert permissions_of(role)


def test_narrow_roles() -> None:
    assert permissions_of("scanner") == {"events:read", "scans:write"}
    assert "keys:manage" not in permissions_of("box_office")
    assert "members:manage" not in permissions_of("analyst")
    assert "inventory:hold" not in permissions_of("analyst")


def test_unknown_role_is_refused() -> None:
    with pytest.raises(ValueError):
        permissions_of("superuser")


def test_publishable_scopes_are_the_buying_ones() -> None:
    assert {str(p) for p in PUBLISHABLE_SCOPES} == {"inventory:read", "inventory:hold", "inventory:confirm"}


@given(kinds, scope_sets, scope_sets)
def test_a_key_that_passes_never_outranks_its_creator(
    kind: str, wanted: frozenset[str], creator: frozenset[str]
) -> None:
    problems = key_scope_problems(kind, wanted, creator)
    if not problems:
        assert wanted <= creator
        if kind == KeyKind.PUBLISHABLE:
            assert wanted <= PUBLISHABLE_SCOPES
    else:
        assert set(problems) <= {"beyond_creator", "not_publishable"}
        assert problems.get("beyond_creator", []) == scopes_beyond(wanted, creator)


@given(kinds, st.lists(st.text(min_size=1, max_size=12)), scope_sets)
def test_unknown_scopes_are_named(kind: str, wanted: list[str], creator: frozenset[str]) -> None:
    unknown = sorted(set(wanted) - set(SCOPES))
    problems = key_scope_problems(kind, wanted, creator)
    assert problems.get("unknown", []) == unknown
    # An unknown scope is never also reported as beyond the creator: it is simply not a scope.
    assert not set(problems.get("beyond_creator", [])) & set(unknown)


def test_key_scope_problems_examples() -> None:
    box_office = permissions_of("box_office")
    assert key_scope_problems("secret", ["inventory:hold"], box_office) == {}
    assert key_scope_problems("secret", ["keys:manage"], box_office) == {"beyond_creator": ["keys:manage"]}
    assert key_scope_problems("publishable", ["events:write"], SCOPES) == {"not_publishable": ["events:write"]}
    assert key_scope_problems("secret", ["root"], SCOPES) == {"unknown": ["root"]}
    with pytest.raises(ValueError):
        key_scope_problems("private", ["events:read"], SCOPES)


@given(maybe_roles, scope_sets, maybe_roles, maybe_roles)
def test_only_an_owner_touches_owners(
    actor_role: str | None, actor_scopes: frozenset[str], target: str | None, new: str | None
) -> None:
    allowed = may_assign_role(actor_role, actor_scopes, target, new)
    if allowed and Role.OWNER in {target, new}:
        assert actor_role == Role.OWNER
    if allowed:
        assert "members:manage" in actor_scopes
        assert new is None or permissions_of(new) <= actor_scopes  # nobody grants more than they hold


@given(scope_sets, maybe_roles, maybe_roles)
def test_keys_never_touch_owners(scopes: frozenset[str], target: str | None, new: str | None) -> None:
    if Role.OWNER in {target, new}:
        assert not may_assign_role(None, scopes, target, new)


def test_may_assign_role_examples() -> None:
    owner, admin = permissions_of("owner"), permissions_of("admin")
    assert may_assign_role("owner", owner, None, "owner")
    assert may_assign_role("owner", owner, "owner", None)
    assert not may_assign_role("admin", admin, None, "owner")
    assert not may_assign_role("admin", admin, "owner", "admin")
    assert may_assign_role("admin", admin, "scanner", "analyst")
    assert not may_assign_role("box_office", permissions_of("box_office"), None, "scanner")


@given(st.lists(roles, max_size=8), maybe_roles, maybe_roles)
def test_owners_left_counts(members: list[str], target: str | None, new: str | None) -> None:
    before = members.count("owner")
    left = owners_left(members, target, new)
    assert left == before - (target == "owner") + (new == "owner")


def test_the_last_owner_cannot_leave_or_step_down() -> None:
    assert owners_left(["owner", "admin"], "owner", None) == 0
    assert owners_left(["owner", "admin"], "owner", "admin") == 0
    assert owners_left(["owner", "owner"], "owner", None) == 1
    assert owners_left(["owner"], None, "owner") == 2


# ---- membership changes and invitations ----

OWNER_ID, ADMIN_ID, PENDING_OWNER_ID = "usr_owner", "usr_admin", "usr_pending"
ROLES_NOW = {OWNER_ID: "owner", ADMIN_ID: "admin", PENDING_OWNER_ID: "owner"}


def change(**fields: object) -> MemberChange:
    values: dict[str, object] = {
        "actor_is_person": True,
        "actor_id": OWNER_ID,
        "actor_role": "owner",
        "actor_scopes": permissions_of("owner"),
        "roles": ROLES_NOW,
        "accepted": frozenset({OWNER_ID, ADMIN_ID}),
        "user_id": ADMIN_ID,
        "new_role": "scanner",
    }
    values.update(fields)
    return MemberChange(**values)  # type: ignore[arg-type]


def test_stale_actor() -> None:
    assert stale_actor_refusal(True, "admin", "admin", True) is None
    assert stale_actor_refusal(True, "admin", "scanner", True) is Refusal.SESSION_ENDED
    assert stale_actor_refusal(True, "admin", None, False) is Refusal.SESSION_ENDED  # removed
    assert stale_actor_refusal(True, "admin", "admin", False) is Refusal.SESSION_ENDED
    assert stale_actor_refusal(False, None, None, False) is None  # a key has no role to lose


def test_grant_refusal_is_may_assign_role() -> None:
    assert grant_refusal("owner", permissions_of("owner"), None, "owner") is None
    assert grant_refusal("admin", permissions_of("admin"), None, "owner") is Refusal.ROLE_NOT_GRANTABLE


def test_last_owner_refusal() -> None:
    assert last_owner_refusal(True, "owner", ["owner", "admin"], None) is Refusal.LAST_OWNER
    assert last_owner_refusal(True, "owner", ["owner", "admin"], "admin") is Refusal.LAST_OWNER
    assert last_owner_refusal(True, "owner", ["owner", "owner"], None) is None
    assert last_owner_refusal(False, "owner", [], None) is None  # a pending owner is no owner yet
    assert last_owner_refusal(True, "admin", ["admin"], None) is None  # an org made by the CLI may have no owner


@pytest.mark.parametrize(
    ("fields", "refusal"),
    [
        ({}, None),
        ({"new_role": None}, None),
        ({"actor_role": "admin"}, Refusal.SESSION_ENDED),  # the token says admin, the roster says owner
        ({"user_id": "usr_nobody"}, Refusal.MEMBER_NOT_FOUND),
        ({"actor_role": "owner", "user_id": "usr_nobody", "accepted": frozenset()}, Refusal.SESSION_ENDED),
        (
            {"actor_id": ADMIN_ID, "actor_role": "admin", "user_id": OWNER_ID, "new_role": None},
            Refusal.ROLE_NOT_GRANTABLE,
        ),
        ({"user_id": OWNER_ID, "new_role": "admin"}, Refusal.LAST_OWNER),
        ({"user_id": OWNER_ID, "new_role": "owner"}, None),
        ({"user_id": PENDING_OWNER_ID, "new_role": None}, None),
        (
            {"actor_is_person": False, "actor_id": "key_1", "actor_role": None, "user_id": OWNER_ID},
            Refusal.ROLE_NOT_GRANTABLE,
        ),
        ({"actor_is_person": False, "actor_id": "key_1", "actor_role": None}, None),
    ],
)
def test_member_change_refusal(fields: dict[str, object], refusal: Refusal | None) -> None:
    assert member_change_refusal(change(**fields)) is refusal


@given(st.booleans(), st.booleans(), st.booleans())
def test_invitation_refusal(matches: bool, used: bool, expired: bool) -> None:
    refusal = invitation_refusal(matches, used, expired)
    if not matches:
        assert refusal is Refusal.INVITATION_NOT_FOUND  # a wrong secret learns nothing more
    elif used:
        assert refusal is Refusal.INVITATION_USED
    else:
        assert refusal is (Refusal.INVITATION_EXPIRED if expired else None)


def test_who_sets_the_first_password() -> None:
    assert invitation_sets_password(account_exists=False, has_password=False, unclaimed=False)
    assert invitation_sets_password(account_exists=True, has_password=False, unclaimed=True)
    assert not invitation_sets_password(account_exists=True, has_password=False, unclaimed=False)
    assert not invitation_sets_password(account_exists=True, has_password=True, unclaimed=True)
    assert first_password_unclaimed(anyone_joined_with_it=False, first_password_invitation_open=False)
    assert not first_password_unclaimed(anyone_joined_with_it=True, first_password_invitation_open=False)
    assert not first_password_unclaimed(anyone_joined_with_it=False, first_password_invitation_open=True)


def test_only_the_invitation_that_made_the_account_may_accept_without_a_password() -> None:
    assert invitation_password_refusal(has_password=False, invitation_creates_user=True) is None  # sets it
    assert invitation_password_refusal(has_password=False, invitation_creates_user=False) is Refusal.PASSWORD_NOT_SET
    assert invitation_password_refusal(has_password=True, invitation_creates_user=False) is None  # checks it
    assert invitation_password_refusal(has_password=True, invitation_creates_user=True) is None


def test_a_new_keys_expiry_is_in_the_future_within_the_lifetime_bound() -> None:
    from datetime import UTC, datetime, timedelta

    from engine.access.rules import key_expiry_problem, key_lifetime_days_max

    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert key_expiry_problem(None, now) is None
    assert key_expiry_problem(now + timedelta(days=1), now) is None
    assert key_expiry_problem(now, now) == "must be in the future"
    assert key_expiry_problem(datetime(2026, 2, 1), now) == "must carry a time zone"
    assert key_expiry_problem(now + timedelta(days=key_lifetime_days_max, seconds=1), now) is not None


def test_a_key_never_outlives_the_key_that_made_it() -> None:
    from datetime import UTC, datetime, timedelta

    from engine.access.rules import key_expiry_under_creator

    creator = datetime(2026, 6, 1, tzinfo=UTC)
    assert key_expiry_under_creator(None, None) == (None, True)
    assert key_expiry_under_creator(creator, None) == (creator, True)  # a person's session bounds nothing
    assert key_expiry_under_creator(None, creator) == (creator, True)  # none given: the creator's
    assert key_expiry_under_creator(creator - timedelta(days=1), creator) == (creator - timedelta(days=1), True)
    assert key_expiry_under_creator(creator + timedelta(seconds=1), creator)[1] is False
