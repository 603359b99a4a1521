"""ICE on a machine whose only interface is the loopback (containers, CI sandboxes).

aioice gathers host candidates from every interface except 127.0.0.1; with nothing else
it offers no candidate at all and the connection fails. Then 127.0.0.1 is better than
nothing: the browser on the same machine can still reach the server.
"""
from __future__ import annotations

import logging

import aioice.ice

log = logging.getLogger(__name__)
_original = aioice.ice.get_host_addresses


def _with_loopback_fallback(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    addresses = _original(use_ipv4=use_ipv4, use_ipv6=use_ipv6)
    if not addresses and use_ipv4:
        log.info("no network interface besides loopback: offering ICE candidates on 127.0.0.1")
        return ["127.0.0.1"]
    return addresses


def install() -> None:
    """Patch aioice (idempotent); candidate gathering looks the function up at call time."""
    aioice.ice.get_host_addresses = _with_loopback_fallback
