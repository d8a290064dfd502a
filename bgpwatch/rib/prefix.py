"""Compact prefix keys: one Python int per prefix, ``(network << 8) | length``.

An int key costs 32-44 bytes, a third of an ``ipaddress`` network object, hashes fast,
and sorts in address order.  The address family is kept beside the key (IPv4 and IPv6
live in separate tables), so the same integer never means two things in one table.
"""

from __future__ import annotations

import socket

_AF = {4: socket.AF_INET, 6: socket.AF_INET6}
MAX_LEN = {4: 32, 6: 128}
# Network masks by family and length: clearing host bits is one AND.
_NET_MASK = {
    family: tuple(((1 << bits) - 1) ^ ((1 << (bits - length)) - 1) for length in range(bits + 1))
    for family, bits in MAX_LEN.items()
}
_inet_pton = socket.inet_pton
_from_bytes = int.from_bytes


def parse_prefix(text: str) -> tuple[int, int]:
    """Return ``(family, key)`` for a prefix such as ``203.0.113.0/24``; raise ValueError if invalid.

    Host bits set below the mask are cleared (as a router would), so ``10.0.0.1/8`` is ``10.0.0.0/8``.
    """
    address, slash, length_text = text.partition("/")
    family = 6 if ":" in address else 4
    try:
        packed = _inet_pton(_AF[family], address)
    except OSError as exc:
        raise ValueError(f"invalid address {address!r} in prefix {text!r}") from exc
    max_len = MAX_LEN[family]
    if not slash:
        length = max_len
    elif length_text.isdigit() and (length := int(length_text)) <= max_len:
        pass
    else:
        raise ValueError(f"invalid prefix length {length_text!r} in {text!r} (0-{max_len} expected)")
    return family, ((_from_bytes(packed, "big") & _NET_MASK[family][length]) << 8) | length


def parse_address(text: str) -> tuple[int, int]:
    """Return ``(family, key)`` of the host prefix (/32 or /128) of an address."""
    if "/" in text:
        raise ValueError(f"{text!r} is a prefix, an address was expected")
    return parse_prefix(text)


def format_prefix(family: int, key: int) -> str:
    """Return the canonical text form of a prefix key."""
    length = key & 0xFF
    network = key >> 8
    packed = network.to_bytes(4 if family == 4 else 16, "big")
    return f"{socket.inet_ntop(_AF[family], packed)}/{length}"


def prefix_length(key: int) -> int:
    """Return the mask length of a prefix key."""
    return key & 0xFF


def supernet(family: int, key: int, length: int) -> int:
    """Return the key of the covering prefix of ``length`` bits (``length`` <= the key's own)."""
    host_bits = MAX_LEN[family] - length
    network = ((key >> 8) >> host_bits) << host_bits
    return (network << 8) | length


def covers(family: int, outer: int, inner: int) -> bool:
    """Tell whether prefix ``outer`` contains prefix ``inner`` (or equals it)."""
    outer_len = outer & 0xFF
    if (inner & 0xFF) < outer_len:
        return False
    return supernet(family, inner, outer_len) == outer
