"""The VRP table: Validated ROA Payloads and route origin validation (RFC 6811).

A VRP is ``(prefix, max length, origin ASN)``.  A route ``(prefix, origin)`` is

* ``VALID`` when some VRP covers its prefix, allows its length (route length <= max length) and
  names its origin AS;
* ``INVALID`` when VRPs cover the prefix but none of them matches;
* ``NOT_FOUND`` when no VRP covers the prefix.

An AS0 VRP (RFC 7607) covers but never matches, and a route whose origin is unknown (``None``: the
path ends in an AS_SET, RFC 6811 2) matches nothing, so it is never VALID.

Prefixes are bgpwatch's compact keys (`bgpwatch.rib.prefix`): ``(family, (network << 8) | length)``.
The table is indexed by family, then prefix length, then key: validating a route walks only the
prefix lengths present in the table that are no longer than the route's (about 25 for IPv4, 49 for
IPv6 on the real RPKI), one dict lookup each.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from bgpwatch.rib.prefix import MAX_LEN, format_prefix, parse_prefix

VALID = "valid"
INVALID = "invalid"
NOT_FOUND = "not_found"

# drain_changes() returns None ("everything changed") past this many distinct prefixes.
MAX_TRACKED_CHANGES = 10_000


class Vrp(NamedTuple):
    """One Validated ROA Payload."""

    family: int  # 4 or 6
    key: int  # (network << 8) | prefix length
    max_length: int
    asn: int

    def __str__(self) -> str:
        return f"{format_prefix(self.family, self.key)}-{self.max_length} AS{self.asn}"


def make_vrp(prefix: str, max_length: int | None, asn: int) -> Vrp:
    """Build a VRP from text; raise ValueError if the prefix, max length or ASN is invalid."""
    family, key = parse_prefix(prefix)
    length = key & 0xFF
    if max_length is None:
        max_length = length
    if not length <= max_length <= MAX_LEN[family]:
        raise ValueError(f"max length {max_length} out of range for {prefix} ({length}-{MAX_LEN[family]})")
    if not 0 <= asn < 1 << 32:
        raise ValueError(f"ASN {asn} out of range (0-4294967295)")
    return Vrp(family, key, max_length, asn)


def _parse_asn(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"invalid ASN {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value[2:] if value[:2].upper() == "AS" else value
        if text.isdigit():
            return int(text)
    raise ValueError(f"invalid ASN {value!r}")


def parse_vrp_json(data: Any) -> tuple[list[Vrp], list[str]]:
    """Read the ``{"roas": [{"prefix", "maxLength", "asn"}]}`` JSON of rpki-client/stayrtr.

    Return the VRPs and one error text per rejected entry (naming its index); never raise.
    """
    if not isinstance(data, dict) or not isinstance(data.get("roas"), list):
        return [], ['expected an object with a "roas" list']
    vrps: list[Vrp] = []
    errors: list[str] = []
    for index, entry in enumerate(data["roas"]):
        try:
            if not isinstance(entry, dict):
                raise ValueError("not an object")
            prefix = entry.get("prefix")
            if not isinstance(prefix, str):
                raise ValueError("prefix missing or not a string")
            max_length = entry.get("maxLength")
            if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int)):
                raise ValueError(f"invalid maxLength {max_length!r}")
            vrps.append(make_vrp(prefix, max_length, _parse_asn(entry.get("asn"))))
        except ValueError as exc:
            errors.append(f"roas[{index}]: {exc}")
    return vrps, errors


class VrpTable:
    """VRPs indexed for origin validation, with a version and a change log for re-validation."""

    def __init__(self) -> None:
        # family -> prefix length -> key -> VRPs of that prefix
        self._index: dict[int, dict[int, dict[int, set[Vrp]]]] = {4: {}, 6: {}}
        # family -> the prefix lengths present, ascending (the walk of validate/covering)
        self._lengths: dict[int, tuple[int, ...]] = {4: (), 6: ()}
        self._count = 0
        self.version = 0
        self._changes: set[tuple[int, int]] = set()
        self._overflow = False
        self._sorted: dict[tuple[int, int], tuple[int, list[int]]] = {}  # see within()

    def __len__(self) -> int:
        return self._count

    def __contains__(self, vrp: object) -> bool:
        if not isinstance(vrp, Vrp):
            return False
        by_length = self._index.get(vrp.family)
        if by_length is None:
            return False
        bucket = by_length.get(vrp.key & 0xFF, {}).get(vrp.key)
        return bucket is not None and vrp in bucket

    def __iter__(self) -> Iterator[Vrp]:
        for by_length in self._index.values():
            for by_key in by_length.values():
                for bucket in by_key.values():
                    yield from bucket

    # --- changes -------------------------------------------------------------------------------
    def _note(self, family: int, key: int) -> None:
        if self._overflow:
            return
        self._changes.add((family, key))
        if len(self._changes) > MAX_TRACKED_CHANGES:
            self._overflow = True
            self._changes.clear()

    def _add(self, vrp: Vrp) -> bool:
        by_length = self._index[vrp.family]
        length = vrp.key & 0xFF
        by_key = by_length.get(length)
        if by_key is None:
            by_key = by_length[length] = {}
            self._lengths[vrp.family] = tuple(sorted(by_length))
        bucket = by_key.get(vrp.key)
        if bucket is None:
            bucket = by_key[vrp.key] = set()
        elif vrp in bucket:
            return False
        bucket.add(vrp)
        self._count += 1
        self._note(vrp.family, vrp.key)
        return True

    def _remove(self, vrp: Vrp) -> bool:
        by_length = self._index.get(vrp.family)
        if by_length is None:
            return False
        length = vrp.key & 0xFF
        by_key = by_length.get(length)
        bucket = by_key.get(vrp.key) if by_key is not None else None
        if bucket is None or vrp not in bucket:
            return False
        bucket.discard(vrp)
        if not bucket:
            del by_key[vrp.key]
            if not by_key:
                del by_length[length]
                self._lengths[vrp.family] = tuple(sorted(by_length))
        self._count -= 1
        self._note(vrp.family, vrp.key)
        return True

    @staticmethod
    def _check(vrp: Vrp) -> None:
        if vrp.family not in MAX_LEN:
            raise ValueError(f"invalid family {vrp.family!r} (4 or 6 expected)")
        if not (vrp.key & 0xFF) <= vrp.max_length <= MAX_LEN[vrp.family]:
            raise ValueError(f"invalid max length {vrp.max_length} for {vrp}")

    def add(self, vrp: Vrp) -> bool:
        """Add a VRP; return False if it was already there.  Raise ValueError for an impossible VRP."""
        self._check(vrp)
        if self._add(vrp):
            self.version += 1
            return True
        return False

    def remove(self, vrp: Vrp) -> bool:
        """Remove a VRP; return False if it was not there."""
        if self._remove(vrp):
            self.version += 1
            return True
        return False

    def apply(self, announced: Iterable[Vrp], withdrawn: Iterable[Vrp]) -> int:
        """Remove ``withdrawn`` then add ``announced`` (one incremental update); return the changes made."""
        changed = sum(1 for vrp in withdrawn if self._remove(vrp))
        for vrp in announced:
            self._check(vrp)
            changed += self._add(vrp)
        if changed:
            self.version += 1
        return changed

    def replace(self, vrps: Iterable[Vrp]) -> int:
        """Make the table hold exactly ``vrps`` (a full load); return the changes made."""
        new = set(vrps)
        for vrp in new:
            self._check(vrp)
        old = set(self)
        return self.apply(new - old, old - new)

    def clear(self) -> None:
        """Remove every VRP."""
        if not self._count:
            return
        if self._count > MAX_TRACKED_CHANGES:
            self._overflow = True
            self._changes.clear()
        else:
            for vrp in self:
                self._note(vrp.family, vrp.key)
        self._index = {4: {}, 6: {}}
        self._lengths = {4: (), 6: ()}
        self._sorted.clear()
        self._count = 0
        self.version += 1

    def drain_changes(self) -> list[tuple[int, int]] | None:
        """Return the ``(family, VRP prefix key)`` added or removed since the last drain, sorted.

        None means "everything changed" (more than `MAX_TRACKED_CHANGES` prefixes, or a clear of a
        big table): re-judge every route.
        """
        if self._overflow:
            self._overflow = False
            self._changes.clear()
            return None
        changes = sorted(self._changes)
        self._changes.clear()
        return changes

    # --- lookups -------------------------------------------------------------------------------
    def covering(self, family: int, key: int) -> list[Vrp]:
        """Return every VRP whose prefix covers (or equals) the prefix ``key``, shortest first."""
        by_length = self._index.get(family)
        if not by_length:
            return []
        length = key & 0xFF
        bits = MAX_LEN[family]
        network = key >> 8
        found: list[Vrp] = []
        for vrp_length in self._lengths[family]:
            if vrp_length > length:
                break
            shift = bits - vrp_length
            bucket = by_length[vrp_length].get((((network >> shift) << shift) << 8) | vrp_length)
            if bucket:
                found.extend(sorted(bucket))
        return found

    def within(self, family: int, key: int) -> list[Vrp]:
        """Return every VRP whose prefix is strictly more specific than the prefix ``key``.

        Per prefix length, the keys of one length sort as their networks do, so the VRPs inside a
        prefix are one contiguous range: two bisections in a sorted key list kept per length and
        rebuilt only after the table changed.
        """
        by_length = self._index.get(family)
        if not by_length:
            return []
        length = key & 0xFF
        bits = MAX_LEN[family]
        low_net = key >> 8
        high_net = low_net + (1 << (bits - length))
        found: list[Vrp] = []
        for vrp_length in self._lengths[family]:
            if vrp_length <= length:
                continue
            by_key = by_length[vrp_length]
            cached = self._sorted.get((family, vrp_length))
            if cached is None or cached[0] != self.version:
                cached = self._sorted[(family, vrp_length)] = (self.version, sorted(by_key))
            keys = cached[1]
            start = bisect_left(keys, (low_net << 8) | vrp_length)
            end = bisect_left(keys, high_net << 8)
            for vrp_key in keys[start:end]:
                found.extend(sorted(by_key[vrp_key]))
        return found

    def validate(self, family: int, key: int, origin: int | None) -> str:
        """Return VALID, INVALID or NOT_FOUND for a route (RFC 6811); ``origin`` None never matches."""
        by_length = self._index.get(family)
        if not by_length:
            return NOT_FOUND
        length = key & 0xFF
        bits = MAX_LEN[family]
        network = key >> 8
        covered = False
        for vrp_length in self._lengths[family]:
            if vrp_length > length:
                break
            shift = bits - vrp_length
            bucket = by_length[vrp_length].get((((network >> shift) << shift) << 8) | vrp_length)
            if not bucket:
                continue
            covered = True
            if origin is None or origin == 0:
                continue
            for vrp in bucket:
                if vrp.asn == origin and length <= vrp.max_length:
                    return VALID
        return INVALID if covered else NOT_FOUND

    def stats(self) -> dict[str, int]:
        """Return counts for status pages: VRPs per family and prefix lengths indexed."""
        counts = {family: 0 for family in self._index}
        for family, by_length in self._index.items():
            for by_key in by_length.values():
                counts[family] += sum(len(bucket) for bucket in by_key.values())
        return {
            "vrps": self._count,
            "ipv4": counts[4],
            "ipv6": counts[6],
            "ipv4_lengths": len(self._lengths[4]),
            "ipv6_lengths": len(self._lengths[6]),
        }
