"""The data folder's files that only this user may read (runtime.json, demo.json, the session secret).

Each is written whole or not at all, so a reader never sees half a file, and is read as missing when it is absent
or unreadable: every reader treats "no such file" and "a broken file" alike, by starting afresh.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

private_file_mode = 0o600


def read_json(path: Path) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def write_private_json(path: Path, data: Mapping[str, Any]) -> None:
    """Atomic, and readable by this user only (demo.json holds an API key)."""
    write_private_text(path, json.dumps(data, indent=2))


def write_private_text(path: Path, text: str) -> None:
    """Atomic, and readable by this user only."""
    temp = path.with_name(path.name + ".tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, private_file_mode)
    with os.fdopen(fd, "w") as out:
        os.fchmod(out.fileno(), private_file_mode)
        out.write(text)
    os.replace(temp, path)
