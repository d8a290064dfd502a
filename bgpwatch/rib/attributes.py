"""Interned, reference-counted path attributes.

One UPDATE's attributes are decoded once and shared by every prefix it carries; equal
attribute sets from different UPDATEs or peers are the same object.  The RIB counts the
routes that use each object and drops it from the pool when the last one goes, so the pool
tracks the live table instead of growing forever.

Memory (a full table is ~1M routes per peer, ~200k attribute sets): an attribute set holds
no key of its own.  The pool indexes each set by the hash of its fields (an int), and checks
the fields on a hit.  The parts many sets have in common are shared, not copied: AS numbers,
MED and LOCAL_PREF values, next hops, and whole community lists (a network tags thousands of
paths with the same few communities) are canonicalised through small value tables when a
set is created.  Those tables only make equal values one object: they are bounded, and
clearing them changes nothing but sharing.  The tables of whole values (AS paths, community
lists, single communities) are small and cleared when full: a value many sets use is met again
soon after a clear and shared again, whereas a value only one set has (the lab's distinct large
community per UPDATE) would cost a table entry as big as itself for nothing.  Integers inside
communities are shared only with integers already known (AS numbers, MED, LOCAL_PREF): a
community's own data is mostly unique.
"""

from __future__ import annotations

import struct
from itertools import chain
from typing import Any

ORIGINS = ("igp", "egp", "incomplete")
_ORIGIN = {name: name for name in ORIGINS}
VALUE_TABLE_LIMIT = 1 << 18  # distinct shared integers and next hops kept before they start over
RECENT_TABLE_LIMIT = 1 << 15  # distinct AS paths / community lists / communities kept per table
_DIGEST_MASK = (1 << 60) - 1  # a 60-bit pool key is a 2-digit int: 32 bytes instead of 40


def pack_large(value: Any) -> bytes:
    """Return large communities ``((asn, data1, data2), ...)`` packed as RFC 8092 puts them on the wire.

    12 bytes each in one bytes object (45 B for one) instead of a tuple of tuples of ints (~140 B):
    the large community is the distinct part of many attribute sets (bench/memory.py --packing lab).
    """
    if type(value) is bytes:
        return value
    if not value:
        return b""
    return struct.pack(f">{3 * len(value)}I", *chain.from_iterable(value))


def unpack_large(packed: bytes) -> tuple[tuple[int, int, int], ...]:
    """Return packed large communities as ``((asn, data1, data2), ...)``."""
    return tuple(_LARGE.iter_unpack(packed)) if packed else ()


_LARGE = struct.Struct(">III")


class PathAttributes:
    """One distinct path: what must be equal for two routes to share an UPDATE.

    Identity is equality: the pool hands out one object per distinct set, so ``is`` compares.
    """

    __slots__ = (
        "origin",
        "as_path",
        "as_set",
        "next_hop",
        "med",
        "local_pref",
        "communities",
        "large",
        "refs",
    )

    def __init__(
        self,
        origin: str,
        as_path: tuple[int, ...],
        as_set: tuple[int, ...],
        next_hop: str,
        med: int | None,
        local_pref: int | None,
        communities: tuple[tuple[int, int], ...],
        large_communities: tuple[tuple[int, int, int], ...] | bytes,
    ) -> None:
        self.origin = origin
        self.as_path = as_path
        self.as_set = as_set
        self.next_hop = next_hop
        self.med = med
        self.local_pref = local_pref
        self.communities = communities
        self.large = pack_large(large_communities)  # packed (`pack_large`): read `large_communities`
        self.refs = 0

    @property
    def large_communities(self) -> tuple[tuple[int, int, int], ...]:
        """Return the large communities as ``((asn, data1, data2), ...)``."""
        return unpack_large(self.large)

    @property
    def origin_as(self) -> int | None:
        """Return the origin AS: the last AS of the path, None if empty or ending in an AS_SET."""
        if self.as_set or not self.as_path:
            return None
        return self.as_path[-1]

    def fields(self) -> tuple[Any, ...]:
        """Return the fields in `AttributePool.intern` order (what makes two sets equal)."""
        return (
            self.origin,
            self.as_path,
            self.as_set,
            self.next_hop,
            self.med,
            self.local_pref,
            self.communities,
            self.large,
        )

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready view (for the API and CLI)."""
        data: dict[str, Any] = {
            "origin": self.origin,
            "as_path": list(self.as_path),
            "next_hop": self.next_hop,
        }
        if self.as_set:
            data["as_set"] = list(self.as_set)
        if self.med is not None:
            data["med"] = self.med
        if self.local_pref is not None:
            data["local_pref"] = self.local_pref
        if self.communities:
            data["communities"] = [f"{a}:{b}" for a, b in self.communities]
        if self.large:
            data["large_communities"] = [f"{a}:{b}:{c}" for a, b, c in self.large_communities]
        return data

    def __repr__(self) -> str:
        return f"PathAttributes(as_path={self.as_path}, next_hop={self.next_hop!r}, refs={self.refs})"


class AttributePool:
    """The intern table: equal attribute sets map to one shared `PathAttributes`."""

    __slots__ = ("_pool", "_count", "_ints", "_texts", "_paths", "_lists", "_items")

    def __init__(self) -> None:
        # hash of the fields -> the set, or a list of sets in the (rare) case of a hash collision
        self._pool: dict[int, PathAttributes | list[PathAttributes]] = {}
        self._count = 0
        self._ints: dict[int, int] = {}  # AS numbers, MED, LOCAL_PREF
        self._texts: dict[str, str] = {}  # next hops
        self._paths: dict[tuple, tuple] = {}  # whole AS paths (recent ones)
        self._lists: dict[tuple, tuple] = {}  # whole community lists (recent ones)
        self._items: dict[tuple, tuple] = {}  # single communities (recent ones)

    def intern(
        self,
        origin: str = "igp",
        as_path: tuple[int, ...] = (),
        as_set: tuple[int, ...] = (),
        next_hop: str = "",
        med: int | None = None,
        local_pref: int | None = None,
        communities: tuple[tuple[int, int], ...] = (),
        large_communities: tuple[tuple[int, int, int], ...] = (),
    ) -> PathAttributes:
        """Return the shared object for these attributes, creating it on first use."""
        large = pack_large(large_communities) if large_communities else b""
        digest = hash((origin, as_path, as_set, next_hop, med, local_pref, communities, large)) & _DIGEST_MASK
        found = self._pool.get(digest)
        if found is not None:
            candidates = (found,) if type(found) is PathAttributes else found
            for attrs in candidates:
                if (
                    attrs.as_path == as_path
                    and attrs.next_hop == next_hop
                    and attrs.communities == communities
                    and attrs.med == med
                    and attrs.local_pref == local_pref
                    and attrs.origin == origin
                    and attrs.as_set == as_set
                    and attrs.large == large
                ):
                    return attrs
        attrs = self._create(origin, as_path, as_set, next_hop, med, local_pref, communities, large)
        if found is None:
            self._pool[digest] = attrs
        elif type(found) is PathAttributes:
            self._pool[digest] = [found, attrs]
        else:
            found.append(attrs)
        self._count += 1
        return attrs

    def _create(
        self,
        origin: str,
        as_path: tuple[int, ...],
        as_set: tuple[int, ...],
        next_hop: str,
        med: int | None,
        local_pref: int | None,
        communities: tuple[tuple[int, int], ...],
        large: bytes,
    ) -> PathAttributes:
        ints = self._ints
        if len(ints) > VALUE_TABLE_LIMIT:
            self._reset_values()
            ints = self._ints
        share = ints.setdefault
        if type(as_path) is tuple and as_path:
            paths = self._paths
            shared = paths.get(as_path)
            if shared is None:
                if len(paths) >= RECENT_TABLE_LIMIT:
                    paths.clear()
                shared = tuple(map(share, as_path, as_path))
                paths[shared] = shared
            as_path = shared
        elif not as_path:
            as_path = ()
        if as_set:
            if type(as_set) is tuple:
                as_set = tuple(map(share, as_set, as_set))
        else:
            as_set = ()
        if type(med) is int:
            med = share(med, med)
        if type(local_pref) is int:
            local_pref = share(local_pref, local_pref)
        if type(next_hop) is str:
            next_hop = self._texts.setdefault(next_hop, next_hop)
        return PathAttributes(
            _ORIGIN.get(origin, origin) if type(origin) is str else origin,
            as_path,
            as_set,
            next_hop,
            med,
            local_pref,
            self._shared_list(communities),
            self._shared_list(large) if large else b"",
        )

    def _shared_list(self, value: Any) -> Any:
        if not value:
            return ()
        kind = type(value)
        if kind is not tuple and kind is not bytes:
            return value
        lists = self._lists
        shared = lists.get(value)
        if shared is not None:
            return shared
        if kind is bytes:  # packed large communities: shared whole, nothing inside
            if len(lists) >= RECENT_TABLE_LIMIT:
                lists.clear()
            lists[value] = value
            return value
        table = self._items
        if len(table) >= RECENT_TABLE_LIMIT:
            table.clear()
        items, ints = table.get, self._ints.get
        parts = []
        for item in value:
            if type(item) is tuple:
                known = items(item)
                if known is None:
                    known = tuple(map(ints, item, item))
                    table[known] = known
                item = known
            parts.append(item)
        shared = tuple(parts)
        if len(lists) >= RECENT_TABLE_LIMIT:
            lists.clear()
        lists[shared] = shared
        return shared

    def _reset_values(self) -> None:
        self._ints = {}
        self._texts = {}
        self._paths = {}
        self._lists = {}
        self._items = {}

    def release_if_unused(self, attrs: PathAttributes) -> None:
        """Forget an attribute set that no route uses any more."""
        if attrs.refs > 0:
            return
        digest = hash(attrs.fields()) & _DIGEST_MASK
        found = self._pool.get(digest)
        if found is attrs:
            del self._pool[digest]
            self._count -= 1
        elif type(found) is list and any(a is attrs for a in found):
            found[:] = [a for a in found if a is not attrs]
            self._count -= 1
            if len(found) == 1:
                self._pool[digest] = found[0]

    def __len__(self) -> int:
        return self._count

    def __contains__(self, attrs: PathAttributes) -> bool:
        found = self._pool.get(hash(attrs.fields()) & _DIGEST_MASK)
        if found is attrs:
            return True
        return type(found) is list and any(a is attrs for a in found)
