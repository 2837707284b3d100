"""A tier ready to search: its fitted codec, its codes, and the scanner its location calls for.

:data:`SCANNERS` is the one table from a tier's location to the scanner that searches its codes
(built new, or loaded from a saved index).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tiervec.codecs.base import BlockScanner, Codec, Scanner, SubsetScanner
from tiervec.index import ANNScanner, HNSWScanner, IVFScanner
from tiervec.search.spec import Location, Tier
from tiervec.store.codes import CodeSource


@dataclass(frozen=True)
class ScannerKind:
    """How the codes of a location are searched: ``build(codec)`` a new, empty scanner;
    ``load(path, codec, mmap)`` a saved one (ANN indexes only)."""

    build: Callable[[Codec], Scanner]
    load: Callable[[Path, Codec, bool], ANNScanner] | None = None


def _load(kind: type[ANNScanner]) -> Callable[[Path, Codec, bool], ANNScanner]:
    return lambda path, codec, mmap: kind.load(path, codec, mmap=mmap)


SCANNERS: dict[Location, ScannerKind] = {
    Location.RAM: ScannerKind(build=lambda codec: codec.scanner()),
    Location.DISK: ScannerKind(build=BlockScanner),  # memory-mapped blocks, read as scanned
    Location.HNSW: ScannerKind(build=HNSWScanner, load=_load(HNSWScanner)),
    Location.IVF: ScannerKind(build=IVFScanner, load=_load(IVFScanner)),
}


@dataclass
class TierRuntime:
    """A tier ready to search: its fitted codec and its codes (a scanner for a first tier)."""

    tier: Tier
    codec: Codec
    source: CodeSource
    scanner: Scanner | None = None
    #: A RAM tier whose scanner scans subsets keeps its memory-mapped codes (no RAM) to read them.
    keeps_codes: bool = False

    def append(self, codes: np.ndarray) -> None:
        """Add a new segment's codes (memory-mapped ones are read into RAM where the tier's
        scanner would otherwise keep them on disk)."""
        if self.scanner is not None:
            self.scanner.add(self._resident(codes))
            if self.keeps_codes:  # memory-mapped copies kept for subset scans
                self.source.append(codes)
        else:
            self.source.append(codes)

    def _resident(self, codes: np.ndarray) -> np.ndarray:
        if self.tier.location is Location.DISK or isinstance(self.scanner, SubsetScanner):
            return codes
        return np.array(codes) if isinstance(codes, np.memmap) else codes

    def build_scanner(self, full: CodeSource | None = None) -> None:
        """Make this tier scannable. RAM codes move into the codec's scanner (no second copy);
        disk codes are scanned block by block through their memory maps. An ANN index fits
        on ``full``, the full-precision vectors of the same rows, where given."""
        if self.scanner is not None:
            return
        scanner = SCANNERS[self.tier.location].build(self.codec)
        if isinstance(scanner, ANNScanner) and full is not None and len(full) and \
                len(full) == len(self.source):
            scanner.fit(full)
        self.scanner = scanner
        for array in self.source.arrays:
            scanner.add(self._resident(array))
        mapped = all(isinstance(a, np.memmap) for a in self.source.arrays)
        self.keeps_codes = self.tier.location is not Location.DISK and mapped and isinstance(
            scanner, SubsetScanner)
        if self.tier.location is not Location.DISK and not self.keeps_codes:
            self.source = CodeSource()  # RAM copies: the scanner holds the only one

    def adopt_index(self, scanner: ANNScanner, count: int) -> None:
        """Use a saved ANN index, adding the rows ``scanner.ntotal .. count - 1`` committed
        after it was saved (their codes are this tier's source)."""
        if scanner.ntotal < count:
            scanner.add(self.source.take(np.arange(scanner.ntotal, count)))
        self.scanner, self.source = scanner, CodeSource()
