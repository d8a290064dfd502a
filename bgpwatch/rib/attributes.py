"""Interned, reference-counted path attributes.

One UPDATE's attributes are decoded once and shared by every prefix it carries; equal
attribute sets from different UPDATEs or peers are the same object.  The RIB counts the
routes that use each object and drops it from the pool when the last one goes, so the pool
tracks the live table instead of growing forever.
"""

from __future__ import annotations

from typing import Any

ORIGINS = ("igp", "egp", "incomplete")


class PathAttributes:
    """One distinct path: what must be equal for two routes to share an UPDATE."""

    __slots__ = (
        "origin",
        "as_path",
        "as_set",
        "next_hop",
        "med",
        "local_pref",
        "communities",
        "large_communities",
        "refs",
        "_key",
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
        large_communities: tuple[tuple[int, int, int], ...],
        key: tuple,
    ) -> None:
        self.origin = origin
        self.as_path = as_path
        self.as_set = as_set
        self.next_hop = next_hop
        self.med = med
        self.local_pref = local_pref
        self.communities = communities
        self.large_communities = large_communities
        self.refs = 0
        self._key = key

    @property
    def origin_as(self) -> int | None:
        """Return the origin AS: the last AS of the path, None if empty or ending in an AS_SET."""
        if self.as_set or not self.as_path:
            return None
        return self.as_path[-1]

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
        if self.large_communities:
            data["large_communities"] = [f"{a}:{b}:{c}" for a, b, c in self.large_communities]
        return data

    def __repr__(self) -> str:
        return f"PathAttributes(as_path={self.as_path}, next_hop={self.next_hop!r}, refs={self.refs})"


class AttributePool:
    """The intern table: equal attribute sets map to one shared `PathAttributes`."""

    __slots__ = ("_pool",)

    def __init__(self) -> None:
        self._pool: dict[tuple, PathAttributes] = {}

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
        key = (origin, as_path, as_set, next_hop, med, local_pref, communities, large_communities)
        attrs = self._pool.get(key)
        if attrs is None:
            attrs = PathAttributes(
                origin, as_path, as_set, next_hop, med, local_pref, communities, large_communities, key
            )
            self._pool[key] = attrs
        return attrs

    def release_if_unused(self, attrs: PathAttributes) -> None:
        """Forget an attribute set that no route uses any more."""
        if attrs.refs <= 0 and self._pool.get(attrs._key) is attrs:
            del self._pool[attrs._key]

    def __len__(self) -> int:
        return len(self._pool)

    def __contains__(self, attrs: PathAttributes) -> bool:
        return self._pool.get(attrs._key) is attrs
