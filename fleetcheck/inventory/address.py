"""Is an inventory address something a transport can connect to: a host name or an IP literal?

The HTTP clients build a URL from the address, so `127.0.0.77/x`, `host#frag`, `host?q` or
`127.0.0.1:5985` silently become another path, port or host. Anything but a DNS name (IDNA
for non-ASCII) or an IPv4/IPv6 literal is refused at inventory load, with exit 2.
"""

from __future__ import annotations

import ipaddress
import re

_LABEL = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")
MAX_NAME = 253


def address_problem(address: str) -> str | None:
    """What is wrong with `address` as a host name or IP literal, or None when it is fine."""
    if not address or address != address.strip():
        return "an address cannot be empty or start/end with a space"
    literal = address[1:-1] if address.startswith("[") and address.endswith("]") else address
    try:
        ipaddress.ip_address(literal)
        return None
    except ValueError:
        if literal is not address or ":" in address:
            return f"{address!r} is not an IP address (give the port as `port:`, not in the address)"
    try:
        ascii_name = address.encode("idna").decode("ascii")
    except UnicodeError as exc:
        return f"{address[:60]!r} is not a valid host name ({exc})"
    name = ascii_name[:-1] if ascii_name.endswith(".") else ascii_name
    if not name or len(name) > MAX_NAME:
        return f"{address[:60]!r} is not a host name (1 to {MAX_NAME} characters)"
    labels = name.split(".")
    for label in labels:
        if not _LABEL.match(label):
            return (
                f"{address[:60]!r} is not a host name or IP address: {label[:30]!r} is not a DNS label "
                "(letters, digits and inner hyphens, at most 63 characters)"
            )
        if label.lower().startswith("xn--"):
            try:
                label.encode("ascii").decode("idna")
            except UnicodeError:
                return f"{address!r} is not a valid international (IDNA) host name"
    if all(label.isdigit() for label in labels):
        return f"{address!r} is not a valid IPv4 address"
    return None
