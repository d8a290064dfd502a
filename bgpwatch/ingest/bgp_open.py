"""Decode BGP OPEN and NOTIFICATION messages (RFC 4271, 5492, 9072) with the capabilities bgpwatch uses.

Used by the BMP parser: a Peer Up carries the OPEN the router sent and the one it received, a Peer
Down the NOTIFICATION that closed the session.  Capabilities read: multiprotocol (1, RFC 4760),
graceful restart (64, RFC 4724), 4-octet AS (65, RFC 6793), ADD-PATH (69, RFC 7911); the others
are listed by code only.  A malformed message raises `BgpMessageError` (a ValueError) naming what
and the byte offset in the buffer; nothing else is raised for any input.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field

BGP_HEADER_BYTES = 19
MARKER = b"\xff" * 16
OPEN, UPDATE, NOTIFICATION, KEEPALIVE = 1, 2, 3, 4
MAX_BGP_MESSAGE = 65535  # RFC 8654 extended messages included
MAX_CAPABILITIES = 256  # per OPEN: far above any real router (FRR sends ~20)

CAP_MULTIPROTOCOL = 1
CAP_GRACEFUL_RESTART = 64
CAP_FOUR_OCTET_AS = 65
CAP_ADD_PATH = 69
AS_TRANS = 23456

# ADD-PATH Send/Receive field (RFC 7911 4).
ADD_PATH_RECEIVE = 1
ADD_PATH_SEND = 2

NOTIFICATION_CODES = {
    1: "message header error",
    2: "OPEN message error",
    3: "UPDATE message error",
    4: "hold timer expired",
    5: "finite state machine error",
    6: "cease",
    7: "route refresh message error",
}
CEASE_SUBCODES = {
    1: "maximum number of prefixes reached",
    2: "administrative shutdown",
    3: "peer de-configured",
    4: "administrative reset",
    5: "connection rejected",
    6: "other configuration change",
    7: "connection collision resolution",
    8: "out of resources",
    9: "hard reset",
    10: "BFD down",
}

_OPEN_FIXED = struct.Struct("!BHH4sB")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")


class BgpMessageError(ValueError):
    """A BGP message that does not decode: what is wrong and at which byte of the buffer."""

    def __init__(self, what: str, offset: int) -> None:
        super().__init__(f"{what} at byte {offset}")
        self.what = what
        self.offset = offset


@dataclass(slots=True)
class OpenMessage:
    """What one OPEN offered."""

    version: int
    my_as: int  # the 2-octet My Autonomous System field (AS_TRANS for a 4-octet ASN)
    hold_time: int
    bgp_id: str
    asn: int  # the real ASN: the 4-octet capability's value when present, else my_as
    capabilities: tuple[int, ...] = ()  # every capability code, in order
    families: tuple[tuple[int, int], ...] = ()  # multiprotocol (AFI, SAFI)
    four_byte_asn: bool = False
    graceful_restart: bool = False
    restart_time: int | None = None
    gr_families: tuple[tuple[int, int], ...] = ()
    add_path: dict[tuple[int, int], int] = field(default_factory=dict)  # (AFI, SAFI) -> send/receive


@dataclass(slots=True)
class NotificationMessage:
    """A NOTIFICATION's code, subcode and data."""

    code: int
    subcode: int
    data: bytes = b""

    def text(self) -> str:
        """Return "NOTIFICATION 6/2 (cease, administrative shutdown)"."""
        name = NOTIFICATION_CODES.get(self.code, "unknown code")
        if self.code == 6 and self.subcode in CEASE_SUBCODES:
            name += f", {CEASE_SUBCODES[self.subcode]}"
        return f"NOTIFICATION {self.code}/{self.subcode} ({name})"


def message_header(buf: bytes, pos: int, end: int, expected: int) -> int:
    """Check the BGP header at ``pos`` (marker, length, type); return the message's end offset."""
    if end - pos < BGP_HEADER_BYTES:
        raise BgpMessageError(f"BGP message header cut ({end - pos} bytes left, 19 needed)", pos)
    if buf[pos : pos + 16] != MARKER:
        raise BgpMessageError("BGP marker not all ones", pos)
    (length,) = _U16.unpack_from(buf, pos + 16)
    msg_type = buf[pos + 18]
    if msg_type != expected:
        raise BgpMessageError(f"BGP message type {msg_type}, {expected} expected", pos + 18)
    if length < BGP_HEADER_BYTES or pos + length > end:
        raise BgpMessageError(f"BGP message length {length} with {end - pos} bytes left", pos + 16)
    return pos + length


def decode_open(buf: bytes, pos: int, end: int, allow_empty: bool = False) -> tuple[OpenMessage | None, int]:
    """Decode the OPEN message (with its header) at ``pos``; return it and the offset after it.

    ``allow_empty``: a bare 19-byte header of type OPEN (FRR 8.4 sends one in a Peer Up when it no
    longer has the peer's OPEN) gives None instead of an error.
    """
    stop = message_header(buf, pos, end, OPEN)
    body = pos + BGP_HEADER_BYTES
    if allow_empty and stop == body:
        return None, stop
    if stop - body < _OPEN_FIXED.size:
        raise BgpMessageError(f"OPEN of {stop - pos} bytes (29 at least)", pos + 16)
    version, my_as, hold_time, bgp_id, opt_len = _OPEN_FIXED.unpack_from(buf, body)
    opt = body + _OPEN_FIXED.size
    extended = False
    if opt_len == 255 and opt < stop and buf[opt] == 255:
        # RFC 9072: extended optional parameters (2-octet length, 2-octet parameter lengths).
        if stop - opt < 3:
            raise BgpMessageError("extended optional parameters length cut", opt)
        (opt_len,) = _U16.unpack_from(buf, opt + 1)
        opt += 3
        extended = True
    if opt + opt_len != stop:
        raise BgpMessageError(f"OPEN optional parameters of {opt_len} bytes, {stop - opt} left", opt - 1)
    message = OpenMessage(version, my_as, hold_time, str(ipaddress.IPv4Address(bgp_id)), my_as)
    codes: list[int] = []
    families: list[tuple[int, int]] = []
    pos = opt
    while pos < stop:
        head = 3 if extended else 2
        if stop - pos < head:
            raise BgpMessageError("optional parameter header cut", pos)
        param_type = buf[pos]
        param_len = _U16.unpack_from(buf, pos + 1)[0] if extended else buf[pos + 1]
        pos += head
        param_end = pos + param_len
        if param_end > stop:
            raise BgpMessageError(f"optional parameter of {param_len} bytes, {stop - pos} left", pos - head)
        if param_type == 2:  # capabilities (RFC 5492)
            while pos < param_end:
                if param_end - pos < 2:
                    raise BgpMessageError("capability header cut", pos)
                code = buf[pos]
                cap_end = pos + 2 + buf[pos + 1]
                if cap_end > param_end:
                    raise BgpMessageError(f"capability {code} overruns its parameter", pos)
                if len(codes) >= MAX_CAPABILITIES:
                    raise BgpMessageError(f"more than {MAX_CAPABILITIES} capabilities", pos)
                codes.append(code)
                _capability(message, families, code, buf, pos + 2, cap_end)
                pos = cap_end
        pos = param_end
    message.capabilities = tuple(codes)
    message.families = tuple(families)
    return message, stop


def _capability(
    message: OpenMessage, families: list[tuple[int, int]], code: int, buf: bytes, pos: int, end: int
) -> None:
    """Read one capability's value into ``message``."""
    size = end - pos
    if code == CAP_MULTIPROTOCOL:
        if size != 4:
            raise BgpMessageError(f"multiprotocol capability of {size} bytes (4 expected)", pos)
        families.append((_U16.unpack_from(buf, pos)[0], buf[pos + 3]))
    elif code == CAP_FOUR_OCTET_AS:
        if size != 4:
            raise BgpMessageError(f"4-octet AS capability of {size} bytes (4 expected)", pos)
        message.four_byte_asn = True
        message.asn = _U32.unpack_from(buf, pos)[0]
    elif code == CAP_GRACEFUL_RESTART:
        if size < 2 or (size - 2) % 4:
            raise BgpMessageError(f"graceful restart capability of {size} bytes", pos)
        message.graceful_restart = True
        message.restart_time = _U16.unpack_from(buf, pos)[0] & 0x0FFF
        message.gr_families = message.gr_families + tuple(
            (_U16.unpack_from(buf, at)[0], buf[at + 2]) for at in range(pos + 2, end, 4)
        )
    elif code == CAP_ADD_PATH:
        if size % 4:
            raise BgpMessageError(f"ADD-PATH capability of {size} bytes (a multiple of 4 expected)", pos)
        for at in range(pos, end, 4):
            message.add_path[(_U16.unpack_from(buf, at)[0], buf[at + 2])] = buf[at + 3]


def decode_notification(buf: bytes, pos: int, end: int) -> tuple[NotificationMessage, int]:
    """Decode the NOTIFICATION message (with its header) at ``pos``; return it and the offset after it."""
    stop = message_header(buf, pos, end, NOTIFICATION)
    body = pos + BGP_HEADER_BYTES
    if stop - body < 2:
        raise BgpMessageError(f"NOTIFICATION of {stop - pos} bytes (21 at least)", pos + 16)
    return NotificationMessage(buf[body], buf[body + 1], bytes(buf[body + 2 : stop])), stop
