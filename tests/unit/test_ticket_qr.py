"""The tickets' QR images read back by a real decoder (zxing-cpp, not segno): the PNG and the SVG (rasterized
here from its one path) carry the payload exactly, and a typical payload fits a small symbol."""

from __future__ import annotations

import io
import re
import secrets
import xml.etree.ElementTree as ElementTree

import numpy as np
import pytest
import zxingcpp
from PIL import Image

from engine.ids import hold_id_for, ticket_id_of_hold
from engine.tickets import qr
from engine.tickets.keys import SigningKey
from engine.tickets.payload import TicketClaims, payload_chars_max
from engine.tickets.verify import sign

svg_pixels_per_module = 6


def _payload(**place: object) -> str:
    event_id = "evt_" + secrets.token_hex(16)
    claims = TicketClaims(ticket_id_of_hold(hold_id_for(event_id, secrets.token_hex(10)), 3), "VIP", **place)  # type: ignore[arg-type]
    return sign(claims, SigningKey("a1b2c3", "org_" + secrets.token_hex(16), secrets.token_bytes(32)))


def _read(image: Image.Image) -> list[str]:
    return [found.text for found in zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)]


def _rasterize(svg: str) -> Image.Image:
    """segno's SVG is one path of horizontal strokes ("M x y", "m dx dy", "h n", 1 unit wide, centred on y)."""
    root = ElementTree.fromstring(svg)
    width, height = int(root.attrib["width"]), int(root.attrib["height"])
    (path,) = root.iter("{http://www.w3.org/2000/svg}path")
    commands = re.findall(r"([MmHh])\s*(-?[\d.]+)(?:[ ,](-?[\d.]+))?", path.attrib["d"])
    assert "".join(c[0] for c in commands).strip("Mmh") == "" and len(commands) > 10
    modules = np.zeros((height, width), dtype=bool)
    x = y = 0.0
    for command, a, b in commands:
        if command == "M":
            x, y = float(a), float(b)
        elif command == "m":
            x, y = x + float(a), y + float(b)
        else:
            length = float(a)
            modules[int(y - 0.5), int(x) : int(x + length)] = True
            x += length
    pixels = np.where(modules, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "L").resize(
        (width * svg_pixels_per_module, height * svg_pixels_per_module), Image.Resampling.NEAREST
    )


@pytest.mark.parametrize("place", [{"unit": 1234}, {"seat_id": "A-12-7"}, {"unit": 1_000_000}])
def test_the_png_decodes_to_the_payload(place: dict[str, object]) -> None:
    payload = _payload(**place)
    png = qr.qr_png(payload)
    assert png.startswith(b"\x89PNG")
    assert _read(Image.open(io.BytesIO(png)).convert("L")) == [payload]


@pytest.mark.parametrize("place", [{"unit": 1234}, {"seat_id": "A-12-7"}])
def test_the_svg_decodes_to_the_payload(place: dict[str, object]) -> None:
    payload = _payload(**place)
    svg = qr.qr_svg(payload)
    assert svg.startswith("<svg") and payload not in svg  # the image, not the text
    assert _read(_rasterize(svg)) == [payload]


def test_a_typical_payload_makes_a_small_symbol() -> None:
    """116-119 characters: version 7 (45 x 45 modules) at error correction M, readable from a phone screen."""
    for payload in (_payload(unit=1234), _payload(seat_id="A-12-7")):
        code = qr.qr_code(payload)
        assert code.version == 7 and code.error in {"M", "Q", "H"}


def test_the_longest_payload_still_renders_and_decodes() -> None:
    event_id = "evt_" + secrets.token_hex(16)
    longest = TicketClaims(
        ticket_id_of_hold(hold_id_for(event_id, secrets.token_hex(10)), 100), "T" * 32, seat_id="S" * 128
    )
    payload = sign(longest, SigningKey("a1b2c3", "org_" + secrets.token_hex(16), secrets.token_bytes(32)))
    assert len(payload) == payload_chars_max
    assert _read(Image.open(io.BytesIO(qr.qr_png(payload, scale=4))).convert("L")) == [payload]
