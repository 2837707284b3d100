"""A collection's pipeline assembled from its files: codes per tier, a saved ANN index."""

from __future__ import annotations

import numpy as np

from tiervec.codecs import Codec
from tiervec.search.pipeline import Pipeline
from tiervec.search.spec import Chain, Location
from tiervec.search.tiers import SCANNERS, TierRuntime
from tiervec.store.codes import CodeSource
from tiervec.store.layout import EXACT_CODEC, CollectionFiles
from tiervec.store.manifest import Manifest
from tiervec.store.writes import Appended


def build_pipeline(
    files: CollectionFiles, manifest: Manifest, chain: Chain, codecs: dict[str, Codec],
    stored: bool, read_only: bool,
) -> Pipeline:
    """A pipeline over the stored codes (``stored``), or over codes encoded now from the stored
    vectors (another chain, for evaluation). Disk tiers stay memory-mapped."""
    runtimes = []
    segments = manifest.segments
    full = CodeSource(files.vectors(segments))
    for i, tier in enumerate(chain.tiers):
        codec = codecs[tier.codec]
        mmap = tier.location is Location.DISK
        if tier.codec == EXACT_CODEC:
            arrays = full.arrays if mmap else [np.array(a) for a in full.arrays]
        elif stored and segments:  # a first tier's scanner copies (into RAM) what it keeps
            arrays = files.codes(segments, manifest.codecs[tier.codec], mmap=mmap or i == 0)
        else:
            arrays = [codec.encode(np.asarray(a)) for a in full.arrays]
        runtimes.append(TierRuntime(tier=tier, codec=codec, source=CodeSource(arrays)))
    if stored:
        load_index(files, manifest, runtimes[0], read_only)
    return Pipeline.from_chain(chain, runtimes, count=len(full), full=CodeSource(full.arrays))


def load_index(
    files: CollectionFiles, manifest: Manifest, first: TierRuntime, read_only: bool
) -> None:
    """Reopen the saved ANN index of the first tier and add the rows committed after it was
    saved (a missing or outdated one is rebuilt from the codes when first searched)."""
    graph, count = manifest.graph, manifest.count
    load = SCANNERS[first.tier.location].load
    if load is None or not graph or graph["generation"] != manifest.generation or \
            graph["rows"] > count:
        return
    path = files.graph_path(graph["file"])
    if not path.is_file():
        return
    first.adopt_index(load(path, first.codec, read_only and graph["rows"] == count), count)


def segment_codes(
    files: CollectionFiles, manifest: Manifest, chain: Chain, appended: Appended
) -> list[np.ndarray]:
    """A new segment's codes for each tier; disk tiers and the first tier read its files,
    memory-mapped (the first tier's scanner copies what it keeps; subset scans read them), so
    a disk tier holds no RAM however many segments are added."""
    by_tier = []
    for i, tier in enumerate(chain.tiers):
        entry = manifest.codecs[tier.codec]
        if tier.codec == EXACT_CODEC:
            by_tier.append(files.vectors([appended.segment])[0]
                           if tier.location is Location.DISK else appended.vectors)
        elif tier.location is Location.DISK or i == 0:  # a first tier's scanner copies them
            by_tier.append(files.codes([appended.segment], entry, mmap=True)[0])
        else:
            by_tier.append(appended.codes[tier.codec])
    return by_tier
