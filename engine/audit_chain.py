"""The audit log's hash chain: what an entry's hash covers, and how a chain is checked.

Each org's entries form one chain. Entry n stores ``prev_hash`` (the hash of entry n-1, or GENESIS_HASH for
the first) and ``hash = sha256(prev_hash || canonical(entry))``, so changing, removing, inserting or reordering
an entry breaks the chain from there on. The canonical bytes are compact, key-sorted, ASCII-only JSON of every
field; ``at`` is spelled RFC 3339 with microseconds (what a timestamptz keeps exactly).

before/after must survive a round trip through Postgres jsonb unchanged, or a stored entry would no longer
match its own hash: so they hold only JSON-native values (objects with string keys, arrays, strings, ints,
bools, null). Floats are refused: jsonb re-spells some of them (1e20 comes back as an integer).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS_HASH = bytes(32)
hash_bytes = 32
ACTOR_TYPES = frozenset({"user", "key", "system"})
actor_id_chars_max = 200
action_chars_max = 64
object_type_chars_max = 64
object_id_chars_max = 200
ip_chars_max = 64
# Nesting bound for before/after (a snapshot of an object is shallow; this only stops runaway recursion).
json_depth_max = 16
_ACTION_RE = re.compile(r"[a-z_]+(\.[a-z_]+)+")

REASON_SEQUENCE_GAP = "sequence gap"
REASON_SEQUENCE_ORDER = "sequence out of order"
REASON_PREV_HASH = "prev_hash does not link"
REASON_HASH = "hash mismatch"
REASON_ORG = "entry of another org"
REASON_TAIL_MISSING = "chain ends before its head"
REASON_BEYOND_HEAD = "entries beyond the head"
REASON_HEAD_HASH = "head does not match the last entry"


@dataclass(frozen=True, slots=True)
class Entry:
    """What one audit entry says; its hash covers every field."""

    org_id: str
    seq: int
    at: datetime
    actor_type: str
    actor_id: str
    action: str
    object_type: str
    object_id: str
    ip: str | None
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class ChainedEntry:
    """An entry as stored: with the hash of its predecessor and its own."""

    entry: Entry
    prev_hash: bytes
    hash: bytes


@dataclass(frozen=True, slots=True)
class Head:
    """The newest entry of an org's chain as the head row records it (seq 0 and GENESIS_HASH: none yet)."""

    seq: int
    hash: bytes


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    entries: int  # how many entries were read
    first_broken_seq: int | None
    reason: str | None


def rfc3339_micros(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def check_json(value: object, depth: int = 0) -> None:
    """Raise ValueError unless ``value`` comes back from jsonb exactly as it went in."""
    # Exact types first: this runs for every sale of a flash sale, in the inventory's group commit.
    kind = type(value)
    if type(value) is str:
        _check_text(value, "audit before/after strings")
    elif value is None or kind is int or kind is bool:
        pass
    elif depth >= json_depth_max:
        raise ValueError(f"audit before/after nest deeper than {json_depth_max}")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError("audit before/after object keys must be strings")
            _check_text(key, "audit before/after keys")
            check_json(item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            check_json(item, depth + 1)
    elif isinstance(value, str):
        _check_text(value, "audit before/after strings")
    elif isinstance(value, int):
        pass
    else:
        raise ValueError(
            "audit before/after hold only JSON objects, arrays, strings, ints, bools and null, "
            f"not {type(value).__name__}"
        )


def _check_text(value: str, what: str) -> None:
    # Postgres text and jsonb refuse NUL, and a lone surrogate is not UTF-8.
    if "\x00" in value:
        raise ValueError(f"{what} may not contain NUL")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"{what} must be valid Unicode") from exc


def check_entry(entry: Entry) -> None:
    """Raise ValueError for an entry the audit_log table (or the chain) would refuse."""
    if entry.seq < 1:
        raise ValueError("audit sequence numbers start at 1")
    check_actor(entry.actor_type, entry.actor_id, entry.ip)
    _check_field(entry.action, "action", action_chars_max)
    if _ACTION_RE.fullmatch(entry.action) is None:
        raise ValueError(f"audit action {entry.action!r} is not dotted lower_snake (like event.create)")
    _check_field(entry.object_type, "object type", object_type_chars_max)
    _check_field(entry.object_id, "object id", object_id_chars_max)
    if entry.at.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    check_json(entry.before)
    check_json(entry.after)


def check_actor(actor_type: str, actor_id: str, ip: str | None) -> None:
    """Raise ValueError for an actor the audit_log table would refuse. Public so a command that carries an actor
    into a later group commit (engine.inventory.commands.Confirm) is refused where it is made, not when it is
    written."""
    if actor_type not in ACTOR_TYPES:
        raise ValueError(f"audit actor type must be one of {sorted(ACTOR_TYPES)}")
    _check_field(actor_id, "actor id", actor_id_chars_max)
    if ip is not None:
        _check_text(ip, "audit ip")
        if len(ip) > ip_chars_max:
            raise ValueError(f"audit ip is longer than {ip_chars_max} characters")


def _check_field(value: str, what: str, chars_max: int) -> None:
    if not isinstance(value, str) or not 1 <= len(value) <= chars_max:
        raise ValueError(f"audit {what} must be 1..{chars_max} characters")
    _check_text(value, f"audit {what}")


def canonical_json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def canonical_bytes(entry: Entry) -> bytes:
    return canonical_json(
        {
            "org_id": entry.org_id,
            "seq": entry.seq,
            "at": rfc3339_micros(entry.at),
            "actor": {"type": entry.actor_type, "id": entry.actor_id},
            "action": entry.action,
            "object": {"type": entry.object_type, "id": entry.object_id},
            "ip": entry.ip,
            "before": entry.before,
            "after": entry.after,
        }
    ).encode("ascii")


def entry_hash(prev_hash: bytes, entry: Entry) -> bytes:
    return hashlib.sha256(prev_hash + canonical_bytes(entry)).digest()


def chain(prev: Head, entries: Iterable[Entry]) -> tuple[list[ChainedEntry], Head]:
    """Append ``entries`` (numbered prev.seq+1, +2, ...) after ``prev``: the chained entries and the new head."""
    chained: list[ChainedEntry] = []
    seq, prev_hash = prev.seq, prev.hash
    for entry in entries:
        seq += 1
        if entry.seq != seq:
            raise ValueError(f"audit entry numbered {entry.seq} where {seq} comes next")
        check_entry(entry)
        digest = entry_hash(prev_hash, entry)
        chained.append(ChainedEntry(entry, prev_hash, digest))
        prev_hash = digest
    return chained, Head(seq, prev_hash)


class ChainVerifier:
    """Checks a chain fed entry by entry in stored order (so a long chain can be read in pages), stopping at
    the first broken link. Pure: the caller does the reading."""

    def __init__(self, org_id: str | None = None) -> None:
        self._org_id = org_id
        self._next_seq = 1
        self._prev_hash = GENESIS_HASH
        self._read = 0
        self._broken: tuple[int, str] | None = None

    @property
    def broken(self) -> bool:
        return self._broken is not None

    @property
    def last(self) -> Head:
        """The last entry that checked out."""
        return Head(self._next_seq - 1, self._prev_hash)

    def feed(self, stored: ChainedEntry) -> bool:
        """Check the next entry; False once the chain is broken (further entries are not looked at)."""
        if self._broken is not None:
            return False
        self._read += 1
        expected = self._next_seq
        entry = stored.entry
        if entry.seq > expected:
            self._broken = (expected, REASON_SEQUENCE_GAP)
        elif entry.seq < expected:
            self._broken = (expected, REASON_SEQUENCE_ORDER)
        elif self._org_id is not None and entry.org_id != self._org_id:
            self._broken = (expected, REASON_ORG)
        elif stored.prev_hash != self._prev_hash:
            self._broken = (expected, REASON_PREV_HASH)
        elif not _hash_matches(stored):
            self._broken = (expected, REASON_HASH)
        else:
            self._next_seq += 1
            self._prev_hash = stored.hash
            return True
        return False

    def finish(self, head: Head | None = None) -> Verdict:
        """The verdict once every entry is fed. ``head`` (the org's head row; Head(0, GENESIS_HASH) when it has
        none) must name the last entry, so a removed tail is a break too; None skips that check."""
        if self._broken is None and head is not None:
            last = self.last
            if head.seq > last.seq:
                self._broken = (last.seq + 1, REASON_TAIL_MISSING)
            elif head.seq < last.seq:
                self._broken = (head.seq + 1, REASON_BEYOND_HEAD)
            elif head.hash != last.hash:
                self._broken = (max(last.seq, 1), REASON_HEAD_HASH)
        if self._broken is None:
            return Verdict(True, self._read, None, None)
        return Verdict(False, self._read, self._broken[0], self._broken[1])


def _hash_matches(stored: ChainedEntry) -> bool:
    try:
        return entry_hash(stored.prev_hash, stored.entry) == stored.hash
    except (ValueError, TypeError):  # a stored value that cannot even be spelled canonically
        return False


def verify(entries: Iterable[ChainedEntry], head: Head | None = None, *, org_id: str | None = None) -> Verdict:
    """Check a whole chain in stored order: sequence from 1 without gaps, each prev_hash linking to the entry
    before, each hash matching its content, and (when given) the head naming the last entry."""
    verifier = ChainVerifier(org_id)
    for stored in entries:
        if not verifier.feed(stored):
            break
    return verifier.finish(head)
