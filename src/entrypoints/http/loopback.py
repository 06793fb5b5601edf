"""Whether an address is this machine's own: the server's exposure check and the
dashboard's cookie flags ask the same question."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach `host`; a name other than localhost is not
    resolved, so it counts as reachable from elsewhere."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
