"""QR images of a ticket payload (PNG and SVG), with segno, in memory.

Error correction level M (15% of the code may be lost: a scratched screen, a glare) with segno's boost, which
raises the level whenever that costs no larger symbol. A 4-module quiet zone, as the standard asks: phone screens
are often read edge to edge.
"""

from __future__ import annotations

import io

import segno

from engine.tickets.payload import payload_chars_max

qr_error_level = "m"
png_scale_default = 8  # pixels per module: a version 8 code is 49 modules, 456 px with its border
png_scale_max = 40
qr_border_modules = 4


def qr_code(payload: str) -> segno.QRCode:
    assert 1 <= len(payload) <= payload_chars_max and payload.isascii()
    return segno.make_qr(payload, error=qr_error_level, boost_error=True, mode="byte")


def qr_png(payload: str, scale: int = png_scale_default) -> bytes:
    assert 1 <= scale <= png_scale_max
    out = io.BytesIO()
    qr_code(payload).save(out, kind="png", scale=scale, border=qr_border_modules)
    return out.getvalue()


def qr_svg(payload: str, scale: int = 1) -> str:
    """An SVG sized in modules (``scale`` user units each): it scales without loss, so one size serves all."""
    assert 1 <= scale <= png_scale_max
    out = io.BytesIO()
    qr_code(payload).save(out, kind="svg", scale=scale, border=qr_border_modules, xmldecl=False)
    return out.getvalue().decode("utf-8")
