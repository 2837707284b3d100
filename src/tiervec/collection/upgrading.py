"""Changing a collection's model without re-encoding it first.

::

    start(NEW)   sample of the collection's texts ─> NEW ─┐   stored vectors of the same rows
                                                          ├─> maps fitted both ways, measured
                                                          │   on held-out texts, the best kept
        ├─ "to-current" kept: state "mapped": new documents are encoded by NEW and mapped into
        │   the stored space; the stored vectors stay
        └─ "to-new" kept: the switch: every segment's vectors mapped into NEW's space in one
            commit (codecs refitted); state "backfilling", every segment pending

    backfill()   (from "mapped", the switch first) each pending segment's texts encoded by NEW
                 outside the writer's mutex, at a share of the CPU, then its vectors replaced in
                 one commit; when none is pending, the codecs are refitted on NEW's own vectors
                 and the upgrade ends (the map dropped)

Until the backfill ends, a query is encoded by both models and the two vectors, each in the
stored space (one mapped), are added (``bridge.ensemble``, an
:class:`~tiervec.encode.bridge.UpgradeEncoder`): measured (docs/models.md), it keeps the
current model's quality where the new model's mapped queries alone lose it, and rises as the
backfill goes. Every step is one commit (a manifest written
atomically): a process killed at any point leaves the last committed state, which searches and
writes use as they are, and ``backfill()`` goes on from it. Searches and writes go on
meanwhile; each search sees one snapshot.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

import numpy as np

from tiervec.codecs import Codec
from tiervec.collection.reading import SnapshotReader
from tiervec.collection.reencode import Texts, encode_texts, sample_texts, segment_texts
from tiervec.collection.tuning import RecallTuner
from tiervec.collection.writing import Writer
from tiervec.encode import Encoder, EncoderConfig, load_encoder
from tiervec.encode.base import ProgressFn, TokenEncoder
from tiervec.encode.bridge import (
    Direction,
    MapChoice,
    MapKind,
    SpaceMap,
    UpgradeEncoder,
    choose_map,
    fit_map,
    needed_sample,
)
from tiervec.encode.models import Backend, find_model, resolve_model, same_model
from tiervec.errors import InvalidUpgrade, UpgradeInProgress
from tiervec.store import writes
from tiervec.store.codes import CodeSource
from tiervec.store.files import load_npy
from tiervec.store.layout import NATIVE, UPGRADE_DIR, VECTORS
from tiervec.store.manifest import Manifest, SegmentEntry
from tiervec.store.revector import commit_revectored
from tiervec.store.upgrades import KnownVectors, UpgradeStatus, read_native, status_of

log = logging.getLogger(__name__)

#: Texts encoded by the new model to fit the maps (fewer where the collection holds fewer).
DEFAULT_SAMPLE = 5_000
#: The map's kind: measured on SciFact and NFCorpus (bench/upgrade.py), Procrustes with both
#: models' queries scored above least squares in every row; least squares agreed more with the
#: new model's neighbours on held-out texts but scored below the current model on NFCorpus.
DEFAULT_KIND = "procrustes"
#: Texts a backfill encodes between two looks at the clock (its CPU share) and the stop flag.
BACKFILL_BATCH = 64


class Upgrader:
    """One collection's model upgrade: :meth:`start`, :meth:`backfill`, :meth:`status`."""

    def __init__(self, reader: SnapshotReader, writer: Writer, recall: RecallTuner) -> None:
        self.reader = reader
        self.writer = writer
        self.recall = recall  # told when the vectors or their space change
        self._running = threading.Lock()  # one backfill at a time in this process
        self._known_cache: tuple[tuple[str | None, int], KnownVectors] | None = None

    def status(self) -> UpgradeStatus:
        return status_of(self.reader.manifest)

    # -- start ----------------------------------------------------------------------------------
    def start(self, model: str | EncoderConfig, *, sample: int = DEFAULT_SAMPLE,
              direction: str = "auto", kind: str = DEFAULT_KIND, encoder: Encoder | None = None,
              progress: ProgressFn | None = None) -> UpgradeStatus:
        """Fit ``kind`` maps both ways between the stored space and ``model``'s, keep the
        better direction on held-out texts (or the ``direction`` asked: ``to-current``,
        ``to-new``; a tie keeps the stored vectors), and commit the upgrade's first state (see
        the module's docstring)."""
        target = self.check(model, sample, direction, kind)
        new_encoder = encoder or load_encoder(target)
        chunking = self.reader.chunking
        if chunking is not None and not isinstance(new_encoder, TokenEncoder):
            raise InvalidUpgrade(_NO_WORD_PIECES.format(model=target.model))
        rows, todo, current = self._sample(sample, new_encoder.dim)
        fresh = encode_texts(new_encoder, todo, chunking, batch=BACKFILL_BATCH,
                             progress=progress)
        assert fresh is not None
        directions = tuple(Direction) if direction == "auto" else (Direction(direction),)
        # every kind measured and reported; the kind asked kept
        choice = choose_map(current, fresh, directions=directions, among=(MapKind(kind),))
        # both directions kept: the backfill moves the stored vectors to the new space
        to_new = fit_map(current, fresh, kind, Direction.TO_NEW)
        to_current = fit_map(fresh, current, kind, Direction.TO_CURRENT)
        with self.writer.mutex:
            manifest = self.reader.manifest
            if manifest.upgrade:
                raise UpgradeInProgress(_in_progress(manifest))
            record = self._record(manifest, target, choice)
            folder = self.reader.files.root / UPGRADE_DIR
            folder.mkdir(exist_ok=True)
            to_new.save(folder / record["maps"]["to-new"])
            to_current.save(folder / record["maps"]["to-current"])
            KnownVectors(rows, fresh).save(folder / record["maps"]["sample"])
            if choice.chosen.direction is Direction.TO_CURRENT:
                self._commit_mapped(manifest, record)
            else:
                self._switch(manifest, record, to_new)
        log.info("upgrade to %s started: %s", target.model, choice.report())
        if self.status().state == "backfilling" and not self.status().pending_segments:
            self._finish()  # the sample held every document: nothing is left to encode
        return self.status()

    def check(self, model: str | EncoderConfig, sample: int, direction: str,
              kind: str) -> EncoderConfig:
        """The new model's config, or the error an upgrade as asked would meet (the model
        named is resolved, not loaded)."""
        self.writer.require_writable()
        reader = self.reader
        current = reader.encoder_config
        target = EncoderConfig(model=model) if isinstance(model, str) else model
        where = str(reader.path)
        if current is None:
            raise InvalidUpgrade(f"collection {where!r} has no model (its vectors were given): "
                                 "there is no model to upgrade from")
        if reader.multivector is not None:
            raise InvalidUpgrade(
                f"collection {where!r} is multi-vector: it stores every word piece's vector "
                "of its model, so it cannot change model in place; index the corpus into a "
                "new collection with --model instead")
        if reader.manifest.upgrade:
            raise UpgradeInProgress(_in_progress(reader.manifest))
        if same_model(current.model, target.model):
            raise InvalidUpgrade(f"collection {where!r} is already encoded by "
                                 f"{current.model!r}; name another model to upgrade to")
        if direction not in ("auto", *Direction):
            raise InvalidUpgrade(f"direction must be auto, to-current or to-new, got "
                                 f"{direction!r}")
        if kind not in tuple(MapKind):
            raise InvalidUpgrade(f"kind must be one of {', '.join(MapKind)}, got {kind!r}")
        if isinstance(sample, bool) or not isinstance(sample, int) or sample < 1:
            raise InvalidUpgrade(f"sample must be a whole number of texts >= 1, got {sample!r}")
        resolve_model(target.model)  # ModelNotFound now, not after a long encoding
        packaged = find_model(target.model)
        if packaged is not None:  # its dimension is known without loading it
            tokens = packaged.backend is Backend.SENTENCE_TRANSFORMERS
            if reader.chunking is not None and not tokens:
                raise InvalidUpgrade(_NO_WORD_PIECES.format(model=target.model))
            self._enough(sample, packaged.dim)
        return target

    def _enough(self, sample: int, new_dim: int) -> None:
        """Refuse a sample too small to fit the maps on (a chunked collection's sample is
        of documents, its pairs their chunks: only the collection's chunks are counted)."""
        snap, needed = self.reader.snap, needed_sample(self.reader.dim, new_dim)
        if self.reader.chunking is not None:
            live = snap.manifest.live  # rows: chunks
            short, what = live < needed, "chunks"
        else:
            live, what = snap.documents, "documents"
            short = live < needed or sample < needed
        if short:
            raise InvalidUpgrade(
                f"a map between {self.reader.dim} and {new_dim} dimensions is fitted on at "
                f"least {needed:,} texts (the collection holds {live:,} {what}, "
                f"{sample:,} asked): add documents before upgrading, or ask for a sample of at "
                f"least {needed:,}")

    def _sample(self, sample: int, new_dim: int) -> tuple[np.ndarray, Texts, np.ndarray]:
        """Up to ``sample`` live documents (seeded; all where the collection holds no more):
        their rows (a chunked document's every chunk), texts and stored vectors."""
        self._enough(sample, new_dim)
        snap = self.reader.snap
        live = snap.live_positions()
        chosen = np.sort(np.random.default_rng(0).choice(len(live), min(sample, len(live)),
                                                         replace=False))
        todo = sample_texts(self.reader, snap, live[chosen])
        positions = todo.all_rows
        stored = CodeSource(self.reader.files.vectors(snap.manifest.segments))
        return snap.rows.rows(positions), todo, stored.take(positions)

    def _record(self, manifest: Manifest, target: EncoderConfig,
                choice: MapChoice) -> dict[str, Any]:
        stamp = f"e{manifest.epoch}"
        assert manifest.encoder is not None
        return {"from": dict(manifest.encoder), "to": target.to_dict(),
                "state": "mapped", "quality": choice.report(),
                "maps": {"to-current": f"map-to-current-{stamp}.npz",
                         "to-new": f"map-to-new-{stamp}.npz",
                         "sample": f"sample-{stamp}.npz"},
                "started": datetime.now(UTC).isoformat(timespec="seconds")}

    def _commit_mapped(self, manifest: Manifest, record: dict[str, Any]) -> None:
        new = writes.copy_manifest(manifest)
        new.upgrade = record
        new.write(self.reader.files.root)
        with self.reader.rw.write():
            self.reader.adopt_settings(new)

    def _switch(self, manifest: Manifest, record: dict[str, Any], to_new: SpaceMap) -> None:
        """Move every stored vector into the new space (one commit): a segment whose live
        rows' new-model vectors are all at hand (it was written while the upgrade mapped, or
        the sample the maps were fitted on holds its rows) takes them and is not pending; the
        others are mapped whole (measured, bench/upgrade.py: a segment mixing the new model's
        vectors with mapped ones can score below one mapped whole, so rows take the new
        model's vectors a segment at a time, as the backfill gives them). The mutex is
        held."""
        reader = self.reader
        arrays = reader.vectors().arrays
        dim = to_new.target_dim
        codecs = _fit(reader, dim, to_new.apply)
        known, deleted = self._known(record, dim), reader.docs.deleted_rows()
        vectors_of, done = {}, set()
        for i, segment in enumerate(manifest.segments):
            native = read_native(reader.files, segment, dim)
            if native is not None:
                vectors_of[i] = partial(np.asarray, native)
                done.add(i)
                continue
            offsets, vectors = known.within(segment)
            if _to_encode(segment, offsets, deleted).any():
                vectors_of[i] = partial(to_new.apply, arrays[i])
            else:
                vectors_of[i] = partial(_mapped_with, to_new, arrays[i], offsets, vectors)
                done.add(i)

        def changes(new: Manifest) -> None:
            new.encoder = dict(record["to"])
            # score calibrations describe the old model's scores: fitted again by tune
            new.search = {k: v for k, v in new.search.items() if k != "calibration"}
            new.upgrade = {**record, "state": "backfilling",
                           "pending": [s.name for i, s in enumerate(new.segments)
                                       if i not in done]}

        revectored = commit_revectored(reader.files, manifest, reader.docs, vectors_of, codecs,
                                       refit=True, changes=changes, dim=dim)
        self._adopt(revectored.manifest, revectored.dropped, revectored.old_codecs)
        for file in (reader.files.root / UPGRADE_DIR).glob(f"{NATIVE}*"):
            file.unlink(missing_ok=True)
        self.recall.new_space()

    # -- backfill -------------------------------------------------------------------------------
    def backfill(self, *, max_segments: int | None = None, cpu_share: float = 1.0,
                 progress: ProgressFn | None = None,
                 stop: threading.Event | None = None) -> UpgradeStatus:
        """Encode the pending segments' texts with the new model and replace their mapped
        vectors, a segment per commit (at most ``max_segments``, until ``stop`` is set); using
        about ``cpu_share`` of the time (pauses between batches); the upgrade ends when none is
        pending. Safe to stop and call again, in this process or another."""
        self.writer.require_writable()
        if not 0 < cpu_share <= 1:
            raise InvalidUpgrade(f"cpu_share must be in (0, 1], got {cpu_share!r}")
        if not self._running.acquire(blocking=False):
            raise UpgradeInProgress("a backfill of this collection is already running")
        try:
            with self.writer.mutex:
                manifest = self.reader.manifest
                if not manifest.upgrade:
                    raise UpgradeInProgress(
                        f"collection {str(self.reader.path)!r} has no upgrade under way; "
                        "start one with upgrade(model=...)")
                if manifest.upgrade["state"] == "mapped":
                    record = manifest.upgrade
                    to_new = SpaceMap.load(self.reader.files.root / UPGRADE_DIR
                                           / record["maps"]["to-new"])
                    self._switch(manifest, record, to_new)
            done = 0
            while max_segments is None or done < max_segments:
                if stop is not None and stop.is_set():
                    break
                name = self._next_pending()
                if name is None:
                    self._finish()
                    break
                self._backfill_segment(name, cpu_share, progress, stop)
                done += 1
            return self.status()
        finally:
            self._running.release()

    def _known(self, record: dict[str, Any], dim: int) -> KnownVectors:
        """The new model's vectors encoded when the upgrade started (its sample), read once
        per upgrade and dimension (every backfilled segment looks in them)."""
        name = record.get("maps", {}).get("sample")
        if self._known_cache is None or self._known_cache[0] != (name, dim):
            path = None if name is None else self.reader.files.root / UPGRADE_DIR / name
            self._known_cache = ((name, dim), KnownVectors.load(path, dim))
        return self._known_cache[1]

    def _next_pending(self) -> str | None:
        manifest = self.reader.manifest
        pending = set((manifest.upgrade or {}).get("pending", ()))
        return next((s.name for s in manifest.segments if s.name in pending), None)

    def _backfill_segment(self, name: str, cpu_share: float, progress: ProgressFn | None,
                          stop: threading.Event | None) -> None:
        reader = self.reader
        segment = next(s for s in reader.manifest.segments if s.name == name)
        # the rows whose new-model vectors are known (the sample's) or not needed (deleted)
        # keep them: the others are encoded
        offsets, known = self._known(reader.manifest.upgrade or {}, reader.dim).within(segment)
        todo = segment_texts(reader, segment,
                             _to_encode(segment, offsets, reader.docs.deleted_rows()))
        stored = load_npy(reader.files.segment_dir(segment) / VECTORS, mmap=False)
        stored[offsets] = known
        encoder = reader.encoder
        assert isinstance(encoder, UpgradeEncoder)
        fresh = encode_texts(encoder.new, todo, reader.chunking, batch=BACKFILL_BATCH,
                             cpu_share=cpu_share, progress=progress, stop=stop)
        if fresh is None:
            return  # stopped
        stored[todo.all_rows] = fresh
        vectors = stored
        with self.writer.mutex:
            manifest = reader.manifest
            numbers = [i for i, s in enumerate(manifest.segments) if s.name == name]
            if not numbers or name not in (manifest.upgrade or {}).get("pending", ()):
                return  # merged by a compaction meanwhile: its rows are pending elsewhere

            def changes(new: Manifest) -> None:
                assert new.upgrade is not None
                new.upgrade = {**new.upgrade,
                               "pending": [p for p in new.upgrade["pending"] if p != name]}

            revectored = commit_revectored(reader.files, manifest, reader.docs,
                                           {numbers[0]: lambda: vectors},
                                           reader.stored_codecs(), refit=False, changes=changes)
            self._adopt(revectored.manifest, revectored.dropped, {})

    def _finish(self) -> None:
        """Refit the codecs on the new model's own vectors and end the upgrade."""
        reader = self.reader
        with self.writer.mutex:
            manifest = reader.manifest
            if not manifest.upgrade or manifest.upgrade.get("pending"):
                return
            maps = dict(manifest.upgrade.get("maps", {}))
            codecs = _fit(reader, reader.dim)

            def changes(new: Manifest) -> None:
                new.upgrade = None

            revectored = commit_revectored(reader.files, manifest, reader.docs, {}, codecs,
                                           refit=True, changes=changes)
            self._adopt(revectored.manifest, [], revectored.old_codecs)
        for file in maps.values():
            (reader.files.root / UPGRADE_DIR / file).unlink(missing_ok=True)
        log.info("upgrade finished: %s", reader.model)

    def _adopt(self, manifest: Manifest, dropped: Sequence[Any], old_codecs: dict) -> None:
        reader = self.reader
        with reader.rw.write():
            reader.adopt(manifest)
        for segment in dropped:
            reader.files.remove_segment(segment)
        reader.files.remove_codec_files(old_codecs, manifest.segments)
        reader.files.remove_stale_graphs(manifest)
        self.recall.changed()


class UpgradeMethods:
    """A collection's model upgrade methods (:class:`~tiervec.Collection` has them), over its
    :class:`Upgrader`."""

    _upgrader: Upgrader

    def upgrade(self, model: str | EncoderConfig, *, sample: int = DEFAULT_SAMPLE,
                direction: str = "auto", kind: str = DEFAULT_KIND, backfill: bool = False,
                cpu_share: float = 1.0, progress: ProgressFn | None = None) -> UpgradeStatus:
        """Move to ``model`` without re-encoding first (``kind`` maps between the spaces fitted
        on ``sample`` texts; ``direction`` ``auto``, ``to-current`` or ``to-new``), then with
        ``backfill`` re-encode (:meth:`backfill`). ``stats().upgrade`` tells where it stands."""
        status = self._upgrader.start(model, sample=sample, direction=direction, kind=kind,
                                      progress=progress)
        return self.backfill(cpu_share=cpu_share, progress=progress) if backfill else status

    def check_upgrade(self, model: str | EncoderConfig, *, sample: int = DEFAULT_SAMPLE,
                      direction: str = "auto", kind: str = DEFAULT_KIND) -> None:
        """Raise the error :meth:`upgrade` would raise before its work (the model loaded)."""
        self._upgrader.check(model, sample, direction, kind)

    def backfill(self, *, max_segments: int | None = None, cpu_share: float = 1.0,
                 progress: ProgressFn | None = None,
                 stop: threading.Event | None = None) -> UpgradeStatus:
        """Re-encode what an upgrade left mapped, a segment per commit (resumable, beside
        searches and writes) at about ``cpu_share`` of the time; the upgrade ends after."""
        return self._upgrader.backfill(max_segments=max_segments, cpu_share=cpu_share,
                                       progress=progress, stop=stop)


def _fit(reader: SnapshotReader, dim: int,
         transform: Callable[[np.ndarray], np.ndarray] | None = None) -> dict[str, Codec]:
    """The stored chain's codecs fitted on a seeded sample of the live stored vectors (passed
    through ``transform`` first: a map into another space)."""
    live = reader.snap.live_positions()
    if len(live) > writes.FIT_SAMPLE:
        live = np.sort(np.random.default_rng(0).choice(live, writes.FIT_SAMPLE, replace=False))
    sample = reader.vectors().take(live)
    if transform is not None:
        sample = transform(sample)
    return writes.fit_codecs([t.codec for t in reader.chain.tiers], dim, CodeSource([sample]),
                             None)


def _mapped_with(space_map: SpaceMap, stored: np.ndarray, offsets: np.ndarray,
                 known: np.ndarray) -> np.ndarray:
    """A segment's stored vectors mapped, but for the rows at ``offsets``, which take the
    new model's own (``known``)."""
    out = space_map.apply(stored)
    out[offsets] = known
    return out


def _to_encode(segment: SegmentEntry, known: np.ndarray, deleted: np.ndarray) -> np.ndarray:
    """Which of ``segment``'s rows need the new model's vectors encoded: not the ``known``
    offsets, not the ``deleted`` rows (a boolean mask of its rows)."""
    need = np.ones(segment.rows, dtype=bool)
    need[known] = False
    lo, hi = np.searchsorted(deleted, [segment.start, segment.start + segment.rows])
    need[deleted[lo:hi] - segment.start] = False
    return need


_NO_WORD_PIECES = (
    "this collection is chunked: its chunks are embedded again by the new model from their "
    "stored spans, which needs a model that gives its word pieces (a sentence-transformers "
    "model); {model!r} does not: choose one that does, or index the corpus into a new "
    "collection with --model")


def _in_progress(manifest: Manifest) -> str:
    up = manifest.upgrade or {}
    return (f"an upgrade to {up.get('to', {}).get('model')!r} is under way (state "
            f"{up.get('state')!r}); finish it with backfill() / `tiervec upgrade --resume`")
