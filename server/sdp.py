"""Checks on a client's SDP offer before aiortc sees it.

aiortc and aioice trust the offer: an ICE candidate with port 70000 is accepted and later fails
inside asyncio (`OverflowError: sendto(): port must be 0-65535`), and a malformed line surfaces as
an internal exception ("'NoneType' object has no attribute ..."). Here each line a browser sends
is checked for what aiortc will parse from it, so a bad offer gets a message saying what is wrong.
"""
from __future__ import annotations

import ipaddress
import re

MAX_CANDIDATES = 32  # a browser offers a few per network interface
MAX_MEDIA = 8  # m= sections; the page sends one
MDNS_NAME = re.compile(r"[A-Za-z0-9-]{1,63}\.local")  # browsers hide host addresses behind mDNS names
NUMBER = re.compile(r"\d{1,10}")
TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")
CANDIDATE_TYPES = ("host", "srflx", "prflx", "relay")
DIRECTIONS = ("sendonly", "sendrecv", "recvonly", "inactive")
RTP_PROTOCOLS = ("UDP/TLS/RTP/SAVPF", "TCP/TLS/RTP/SAVPF", "RTP/SAVPF", "UDP/TLS/RTP/SAVP", "RTP/SAVP")
SESSION_ONLY = "vost"  # v=, o=, s=, t= belong before the first m= line
SETUP_ROLES = ("actpass", "active", "passive")
# Attributes aiortc reads numbers from: name -> how many leading space-separated fields are numbers.
NUMERIC_FIELDS = {"rtpmap": 1, "fmtp": 1, "rtcp-fb": 0, "extmap": 0, "rtcp": 1, "ssrc": 1, "sctp-port": 1,
                  "max-message-size": 1}


class OfferError(ValueError):
    """What is wrong with an offer, in words for the client."""


def _number(text: str, what: str, low: int, high: int) -> int:
    if not NUMBER.fullmatch(text):
        raise OfferError(f"{what} {quote(text)} is not a number")
    value = int(text)
    if not low <= value <= high:
        raise OfferError(f"{what} {value} is out of range ({low}-{high})")
    return value


def quote(text: str, limit: int = 40) -> str:
    """A client's text, quoted and cut short: error messages must stay small."""
    return repr(text if len(text) <= limit else text[:limit] + "…")


def _address(text: str, what: str) -> None:
    if MDNS_NAME.fullmatch(text):
        return
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise OfferError(f"{what} {quote(text)} is not an IP address or an mDNS .local name") from None
    if address.is_multicast or address.is_unspecified or str(address) == "255.255.255.255":
        raise OfferError(f"{what} {text} cannot be reached (multicast, broadcast or unspecified)")


def check_candidate(value: str) -> None:
    """value: what follows 'a=candidate:' (RFC 8445 section 5.1: foundation component transport priority
    address port typ type [raddr a rport p] [extensions])."""
    fields = value.split()
    if len(fields) < 8 or fields[6] != "typ":
        raise OfferError(f"ICE candidate {quote(value)} is malformed (expected 'foundation component transport "
                         "priority address port typ type ...')")
    foundation, component, transport, priority, address, port, _, kind = fields[:8]
    if not TOKEN.fullmatch(foundation) or len(foundation) > 64:
        raise OfferError(f"ICE candidate foundation {quote(foundation)} is not a short token")
    _number(component, "ICE candidate component", 1, 256)
    if transport.lower() not in ("udp", "tcp"):
        raise OfferError(f"ICE candidate transport {quote(transport)} is neither udp nor tcp")
    _number(priority, "ICE candidate priority", 1, 2**31 - 1)
    _address(address, "ICE candidate address")
    # Browsers' active TCP candidates carry the discard port 9 (or 0): nothing is sent to them.
    _number(port, "ICE candidate port", 0 if transport.lower() == "tcp" else 1, 65535)
    if kind not in CANDIDATE_TYPES:
        raise OfferError(f"ICE candidate type {quote(kind)} is not one of {', '.join(CANDIDATE_TYPES)}")
    extensions = fields[8:]
    if len(extensions) % 2:
        raise OfferError(f"ICE candidate {quote(value)} has an attribute without a value")
    for key, item in zip(extensions[::2], extensions[1::2]):
        if key == "raddr" and item not in ("0.0.0.0", "::"):  # browsers hide the related address so
            _address(item, "ICE candidate related address")
        elif key == "rport":
            _number(item, "ICE candidate related port", 0, 65535)
        elif key == "tcptype" and item not in ("active", "passive", "so"):
            raise OfferError(f"ICE candidate tcptype {quote(item)} is not active, passive or so")


def _check_connection(value: str, what: str) -> None:
    """value: 'IN IP4 address' (c= lines, a=rtcp after its port)."""
    fields = value.split()
    if len(fields) != 3 or fields[0] != "IN" or fields[1] not in ("IP4", "IP6"):
        raise OfferError(f"{what} {quote(value)} is malformed (expected 'IN IP4 address' or 'IN IP6 address')")
    if not MDNS_NAME.fullmatch(fields[2]):
        try:
            ipaddress.ip_address(fields[2])
        except ValueError:
            raise OfferError(f"{what} address {quote(fields[2])} is not an IP address") from None


def _check_media(value: str) -> tuple[str, list[str]]:
    """value: what follows 'm='; returns the media kind and its formats."""
    fields = value.split()
    if len(fields) < 4:
        raise OfferError(f"media line {quote('m=' + value)} is malformed (expected 'm=kind port proto formats')")
    kind, port, proto, formats = fields[0], fields[1].split("/", 1)[0], fields[2], fields[3:]
    _number(port, "media port", 0, 65535)
    if kind in ("audio", "video"):
        if proto not in RTP_PROTOCOLS:
            raise OfferError(f"{kind} media uses the protocol {quote(proto)}; WebRTC needs UDP/TLS/RTP/SAVPF")
        for fmt in formats:
            _number(fmt, "RTP payload type", 0, 127)
    return kind, formats


def _check_attribute(name: str, value: str) -> None:
    if name == "candidate":
        check_candidate(value)
    elif name == "setup" and value not in SETUP_ROLES:
        raise OfferError(f"a=setup:{quote(value)} is not one of {', '.join(SETUP_ROLES)}")
    elif name == "fingerprint" and len(value.split()) != 2:
        raise OfferError(f"a=fingerprint:{quote(value)} is malformed (expected 'algorithm hash')")
    elif name in ("ice-ufrag", "ice-pwd") and not (0 < len(value) <= 256 and TOKEN.fullmatch(value)):
        raise OfferError(f"a={name} {quote(value)} is not a short token")
    elif name == "rtcp" and " " in value:
        _check_connection(value.split(" ", 1)[1], "a=rtcp")
    elif name == "ssrc-group":
        for ssrc in value.split()[1:]:
            _number(ssrc, "a=ssrc-group SSRC", 0, 2**32 - 1)
    elif name == "fmtp" and "apt=" in value:  # a retransmission format: apt names the format it repeats
        apt = value.split("apt=", 1)[1].split(";", 1)[0]
        _number(apt, "a=fmtp apt", 0, 127)
    if name in NUMERIC_FIELDS:
        first = value.split(" ", 1)[0].split("/", 1)[0]
        if name in ("rtpmap", "fmtp", "rtcp-fb") and first == "*":
            return
        _number(first, f"a={name} value", 0, 2**32 - 1)
        if name == "rtpmap":
            _, _, encoding = value.partition(" ")
            parts = encoding.split("/")
            if len(parts) < 2 or not parts[0]:
                raise OfferError(f"a=rtpmap:{quote(value)} is malformed (expected 'type name/clock')")
            _number(parts[1], "a=rtpmap clock rate", 1, 2**32 - 1)
            if len(parts) > 2:
                _number(parts[2], "a=rtpmap channel count", 1, 255)


def _parse(sdp: str) -> tuple[dict[str, list[str]], list[tuple[str, dict[str, list[str]]]]]:
    """Check every line; returns the session's attributes and each media section's kind and attributes."""
    # aiortc splits lines as str.splitlines does: a lone \r, \x85 or \u2028 would start a line unseen here.
    if any(c < " " and c != "\n" or c in "\x7f\x85\u2028\u2029" for c in sdp.replace("\r\n", "\n")):
        raise OfferError("the SDP contains control characters or line breaks other than CRLF")
    lines = [line for line in (line.rstrip("\r") for line in sdp.split("\n")) if line]
    if not lines or lines[0] != "v=0":
        raise OfferError("an SDP offer starts with the line v=0")
    session: dict[str, list[str]] = {}
    media: list[tuple[str, dict[str, list[str]]]] = []
    candidates = 0
    for number, line in enumerate(lines, 1):
        if len(line) < 2 or line[1] != "=" or not "a" <= line[0] <= "z":
            raise OfferError(f"SDP line {number} ({quote(line)}) is not of the form x=value")
        key, value = line[0], line[2:]
        if key in SESSION_ONLY and media:
            raise OfferError(f"SDP line {number}: {key}= belongs before the first m= line")
        if key == "c":
            _check_connection(value, "c=")
        if key == "m":
            kind, formats = _check_media(value)
            media.append((kind, {"formats": formats}))
            if len(media) > MAX_MEDIA:
                raise OfferError(f"the offer has more than {MAX_MEDIA} media sections")
        elif key == "a":
            name, _, rest = value.partition(":")
            _check_attribute(name, rest)
            (media[-1][1] if media else session).setdefault(name, []).append(rest)
            if name == "candidate":
                candidates += 1
                if candidates > MAX_CANDIDATES:
                    raise OfferError(f"the offer has more than {MAX_CANDIDATES} ICE candidates")
    return session, media


def check_offer(sdp: str) -> None:
    """Raise OfferError saying what is wrong with the offer, if anything is."""
    session, media = _parse(sdp)
    if not any(kind == "video" for kind, _ in media):
        raise OfferError("the offer has no video track")
    mids = [attrs.get("mid", [None])[0] for _, attrs in media]
    for n, (kind, attrs) in enumerate(media, 1):
        where = f"media section {n} ({kind})"
        if "mid" not in attrs:
            raise OfferError(f"{where} has no a=mid")
        if not any(d in attrs or d in session for d in DIRECTIONS):
            raise OfferError(f"{where} has no direction (a=sendonly, a=sendrecv, a=recvonly or a=inactive)")
        if kind in ("audio", "video"):
            mapped = {v.split(" ", 1)[0] for v in attrs.get("rtpmap", [])}
            unmapped = [f for f in attrs["formats"] if int(f) >= 96 and f not in mapped]
            if unmapped:
                raise OfferError(f"{where} lists payload type {unmapped[0]} without an a=rtpmap for it")
        needed = [f"a={name}" for name in ("ice-ufrag", "ice-pwd", "fingerprint", "setup")
                  if name not in attrs and name not in session]
        if needed:
            raise OfferError(f"{where} has no {', '.join(needed)} (WebRTC needs ICE credentials, a DTLS "
                             "fingerprint and role)")
        if kind in ("audio", "video") and "rtcp-mux" not in attrs:
            raise OfferError(f"{where} has no a=rtcp-mux (RTP and RTCP must share one port)")
    if len(set(mids)) != len(mids):
        raise OfferError("two media sections have the same a=mid")
    if any("group" in attrs for _, attrs in media):
        raise OfferError("a=group belongs before the first m= line")
    for group in session.get("group", []):
        missing = [mid for mid in group.split()[1:] if mid not in mids]
        if missing:
            raise OfferError(f"a=group:{quote(group)} names the media {quote(missing[0])}, which has no section")
    video = [attrs for kind, attrs in media if kind == "video"]
    codecs = {v.split(" ", 1)[-1].split("/", 1)[0].upper() for attrs in video for v in attrs.get("rtpmap", [])}
    if not codecs & {"VP8", "H264"}:
        raise OfferError("the offer's video has no codec the server decodes (VP8 or H264)")
