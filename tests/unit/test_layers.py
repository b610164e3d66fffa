"""The layers hold: pyproject.toml's import-linter contracts (engine pure, no upward import, no HTTP below the
gateway) are checked on every `make test`, not only by `make lint`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
lint_s_max = 120


def test_import_contracts_are_kept() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=lint_s_max
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout
