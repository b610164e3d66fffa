"""Signing deliveries: `Voelgoed-Signature: t=<unix s>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.

Written here again rather than imported: the simulator stands for an outside party and shares no code with the
platform, so the platform's verifier (engine/payments/signature.py) is checked against an independent signer.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "Voelgoed-Signature"


def signature_header(secret: bytes, body: bytes, timestamp_s: int) -> str:
    mac = hmac.new(secret, str(timestamp_s).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp_s},v1={mac}"
