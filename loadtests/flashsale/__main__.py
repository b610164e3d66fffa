"""`python -m loadtests.flashsale`: one audited flash sale; exits 1 when the audit finds a broken promise.

Imports stay inside main(): the generator processes (spawned) re-import this module and need none of it.
"""

from __future__ import annotations

import sys


def main() -> int:
    from loadtests.flashsale.run import run_sale
    from loadtests.flashsale.scenario import from_args, parser

    report = run_sale(from_args(parser().parse_args()))
    return 0 if report["audit_passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
