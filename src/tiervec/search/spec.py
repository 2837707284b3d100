"""Tier chains: which codecs a search runs through, where each lives, how many candidates pass.

Spec strings, like FAISS's index-factory strings, are one line::

    chain := tier ( "->" tier )*
    tier  := codec [ "@" location ] [ "*" oversample ]

- ``codec``: one of :data:`tiervec.codecs.CODECS` (``float32``, ``float16``, ``int8``,
  ``binary``, ``hamming``).
- ``location``: ``ram`` (default: codes loaded in memory), ``disk`` (codes read from a
  memory-mapped file, only the rows a query needs, in sorted order), ``hnsw`` or ``ivf``
  (first tier only: codes in RAM inside an ANN index that is searched instead of scanned; see
  :mod:`tiervec.index`).
- ``oversample``: a tier that passes candidates on passes ``k * oversample`` of them
  (default :data:`DEFAULT_OVERSAMPLE`). The last tier returns ``k``.

The first tier scans every vector; each later tier rescores the candidates of the one before.
``"binary*4 -> float32@disk"``: scan 1-bit codes in RAM, rescore the best ``4k`` with the exact
vectors read from disk. :class:`Chain` and :class:`Tier` are the equivalent config objects, and
``str(Chain.parse(s))`` gives the canonical spelling.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from tiervec.codecs import VALID, canonical_name, make_codec
from tiervec.errors import InvalidTierSpec

DEFAULT_OVERSAMPLE = 4

#: The chain new collections get: 32x less RAM than float32, at most ``4k`` disk reads.
DEFAULT_CHAIN = "binary*4 -> float32@disk"

_TIER = re.compile(r"^(?P<codec>[a-z][a-z0-9_+()]*)(?P<mods>(?:@[a-z]+|\*[^@*]*)*)$")
_MOD = re.compile(r"@([a-z]+)|\*([^@*]*)")


class Location(StrEnum):
    """Where a tier's codes live during search."""

    RAM = "ram"
    DISK = "disk"
    HNSW = "hnsw"
    IVF = "ivf"

    @property
    def indexed(self) -> bool:
        """Whether codes here live in an ANN index (searched, not scanned)."""
        return self in (Location.HNSW, Location.IVF)


@dataclass(frozen=True, kw_only=True)
class Tier:
    """One stage of a chain: a codec, where its codes live, and its candidate oversampling.

    ``oversample`` is ignored for the last tier of a chain (it returns ``k``).
    """

    codec: str
    location: Location = Location.RAM
    oversample: int = DEFAULT_OVERSAMPLE

    def __post_init__(self) -> None:
        object.__setattr__(self, "codec", canonical_name(self.codec))
        try:
            object.__setattr__(self, "location", Location(self.location))
        except ValueError:
            raise InvalidTierSpec(
                f"unknown tier location {self.location!r}; valid: "
                f"{', '.join(loc.value for loc in Location)}"
            ) from None
        if isinstance(self.oversample, bool) or not isinstance(self.oversample, int):
            raise InvalidTierSpec(f"oversample must be an integer >= 1, got {self.oversample!r}")
        if self.oversample < 1:
            raise InvalidTierSpec(f"oversample must be >= 1, got {self.oversample}")

    def spec(self, last: bool = False) -> str:
        """This tier's spelling in a spec string."""
        out = self.codec + ("" if self.location is Location.RAM else f"@{self.location}")
        return out if last else f"{out}*{self.oversample}"

    def bytes_per_vector(self, dim: int) -> int:
        """Bytes of this tier's codes for one ``dim``-dimensional vector."""
        return make_codec(self.codec, dim).bytes_per_vector


@dataclass(frozen=True)
class Chain:
    """An ordered tuple of tiers; the first scans everything, each later one rescores."""

    tiers: tuple[Tier, ...]

    def __post_init__(self) -> None:
        tiers = tuple(self.tiers)
        if not tiers:
            raise InvalidTierSpec("a chain needs a tier at least, e.g. 'binary*4 -> float32@disk'")
        if not all(isinstance(t, Tier) for t in tiers):
            raise InvalidTierSpec("a chain's tiers must be tiervec.search.Tier objects")
        object.__setattr__(self, "tiers", tiers)
        if any(t.location.indexed for t in tiers[1:]):
            raise InvalidTierSpec(
                "only the first tier of a chain can be an ANN index (@hnsw, @ivf): later tiers "
                "rescore candidates, e.g. 'int8@hnsw*4 -> float32@disk'"
            )

    @classmethod
    def parse(cls, spec: str | Chain) -> Chain:
        """Parse a spec string (see the module docstring); a :class:`Chain` passes through."""
        if isinstance(spec, Chain):
            return spec
        if not isinstance(spec, str) or not spec.strip():
            raise InvalidTierSpec(
                f"empty tier spec {spec!r}; write e.g. 'binary*4 -> float32@disk' "
                f"(codecs: {VALID})"
            )
        parts = [p.replace(" ", "") for p in spec.split("->")]
        tiers = tuple(_parse_tier(p, spec, i, i == len(parts) - 1) for i, p in enumerate(parts))
        return cls(tiers)

    def __str__(self) -> str:
        last = len(self.tiers) - 1
        return " -> ".join(t.spec(last=i == last) for i, t in enumerate(self.tiers))

    def shape(self) -> tuple[tuple[str, Location], ...]:
        """The chain's codecs and locations: chains of one shape differ in oversampling only
        (they can share fitted codecs and built scanners)."""
        return tuple((t.codec, t.location) for t in self.tiers)

    def candidates(self, k: int) -> list[int]:
        """Number of results each tier passes on for a top-``k`` search."""
        last = len(self.tiers) - 1
        return [k if i == last else k * t.oversample for i, t in enumerate(self.tiers)]

    def tier_bytes(self, dim: int) -> list[int]:
        """Bytes per vector of each tier's codes, in chain order."""
        return [t.bytes_per_vector(dim) for t in self.tiers]

    def ram_bytes_per_vector(self, dim: int) -> int:
        """Bytes per vector held in RAM by the chain's tiers (an ANN index's links or ids
        included: ``8 * M`` for an HNSW graph, an 8-byte id for IVF)."""
        from tiervec.index.hnsw import graph_bytes_per_vector

        extra = {Location.HNSW: graph_bytes_per_vector(), Location.IVF: 8}
        return sum(t.bytes_per_vector(dim) + extra.get(t.location, 0)
                   for t in self.tiers if t.location is not Location.DISK)

    def disk_bytes_per_vector(self, dim: int) -> int:
        """Bytes per vector that the chain's tiers read from disk."""
        return sum(t.bytes_per_vector(dim) for t in self.tiers if t.location is Location.DISK)

    def disk_reads_per_query(self, k: int, n: int = 0) -> int:
        """Vectors read from disk tiers per query of a top-``k`` search (at most).

        A first tier on disk scans all ``n`` vectors of the collection.
        """
        counts = [n, *self.candidates(k)]
        return sum(counts[i] for i, t in enumerate(self.tiers) if t.location is Location.DISK)


def _parse_tier(text: str, spec: str, index: int, last: bool) -> Tier:
    match = _TIER.match(text)
    if not match:
        raise InvalidTierSpec(
            f"cannot parse tier {index + 1} {text!r} of {spec!r}: write "
            "codec[@ram|@disk|@hnsw|@ivf][*N], "
            f"e.g. 'binary*4 -> float32@disk' (codecs: {VALID})"
        )
    codec = canonical_name(match["codec"])
    kwargs: dict[str, object] = {"codec": codec}
    for loc, factor in _MOD.findall(match["mods"]):
        if loc:
            kwargs["location"] = loc
            continue
        if last:
            raise InvalidTierSpec(
                f"the last tier {text!r} of {spec!r} returns k results and takes no '*N'; "
                "put the oversampling on the tier that passes candidates on"
            )
        if not (factor.isascii() and factor.isdigit()):
            raise InvalidTierSpec(
                f"oversample {factor!r} in tier {text!r} of {spec!r} must be a whole number >= 1"
            )
        kwargs["oversample"] = int(factor)
    return Tier(**kwargs)  # type: ignore[arg-type]
