"""Parsers for the few Windows outputs that exist only as localized text.

They read numbers, GUIDs, bracketed codes and line positions, never translated words, so the
same code works on English, French, Dutch or Korean hosts.
"""

from fleetcheck.parsers.shadowstorage import ShadowStorage, parse_shadowstorage, parse_size
from fleetcheck.parsers.vsswriters import VssWriter, parse_vss_writers
from fleetcheck.parsers.w32tm import W32tmStatus, parse_w32tm_status

__all__ = [
    "ShadowStorage",
    "VssWriter",
    "W32tmStatus",
    "parse_shadowstorage",
    "parse_size",
    "parse_vss_writers",
    "parse_w32tm_status",
]
