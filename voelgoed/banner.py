"""What `voelgoed up` prints once everything is ready: where the API is, and how to try the demo on it."""

from __future__ import annotations

from pathlib import Path

from voelgoed.demo import DEMO_FILE_NAME, Demo


def banner(
    demo: Demo, *, api_url: str, data_dir: Path, dashboard_port: int | None, payments_url: str | None = None
) -> str:
    """``dashboard_port`` None: Ray is not this run's own (VOELGOED_RAY_ADDRESS), so its dashboard is not ours to
    announce."""
    api, key, event = api_url, demo.api_key, demo.event_id
    auth = f'-H "Authorization: Bearer {key}"'
    lines = [
        "",
        "VoelgoedEvents is up.",
        f"  API            {api}   (OpenAPI: {api}/openapi.json)",
        f"  Metrics        {api}/metrics",
    ]
    if payments_url is not None:
        lines.append(f"  Payments sim   {payments_url}   (test card 4242424242424242; docs/api.md)")
    if dashboard_port is not None:
        lines.append(f"  Ray dashboard  http://127.0.0.1:{dashboard_port}")
    lines += [
        f"  Demo org       {demo.org_id}",
        f"  Demo API key   {key}   (kept in {data_dir / DEMO_FILE_NAME})",
        f"  Demo event     {event}   (on sale: seats A-1-1 .. A-2-10, 500 GA)",
        "",
        "Try:",
        f"  curl -s {auth} {api}/v1/events/{event}/availability",
        f"  curl -s -X POST {auth} -H 'Content-Type: application/json' \\",
        f'       -d \'{{"buyer_id": "b-1", "seats": ["A-1-7"]}}\' {api}/v1/events/{event}/holds',
        "  .venv/bin/voelgoed org create 'My Org'      # another org and its owner key",
        "",
        "Press Ctrl-C to stop.",
    ]
    return "\n".join(lines)
