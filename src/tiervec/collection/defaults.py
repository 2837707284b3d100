"""The search defaults a collection keeps in its manifest (``tiervec tune --apply``): the
hybrid fusion and the relevance calibrations by mode; read the same way by one collection
and by a sharded one (whose shards each keep them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tiervec.search import FusionConfig, Query
from tiervec.search.cutoff import RelevanceModel, checked_model


class SearchDefaults:
    """``fusion``, ``fusion_tuned``, ``calibration`` and the checks a search makes of them,
    over the manifest's ``search`` settings (:meth:`_stored_search`)."""

    path: Path

    def _stored_search(self) -> dict[str, Any]:
        """The manifest's ``search`` settings (the first shard's, for a sharded collection)."""
        raise NotImplementedError

    @property
    def fusion(self) -> FusionConfig:
        """The fusion a hybrid search uses unless told otherwise (``tiervec tune --apply``)."""
        stored = self._stored_search().get("fusion")
        return FusionConfig.from_dict(stored) if stored else FusionConfig()

    @property
    def fusion_tuned(self) -> bool:
        """Whether :attr:`fusion` was stored by ``tiervec tune --apply`` (else the default)."""
        return "fusion" in self._stored_search()

    def calibration(self, kind: str) -> RelevanceModel | None:
        """The fitted relevance calibration of a search mode (``None``: never fitted)."""
        stored = self._stored_search().get("calibration", {}).get(kind)
        return RelevanceModel.from_dict(stored) if stored else None

    def _fusion(self, query: Query) -> FusionConfig:
        """The fusion ``query`` asks for, else the collection's."""
        given = query.options.fusion
        return FusionConfig.from_dict(given) if given is not None else self.fusion

    def _relevance_model(self, query: Query) -> RelevanceModel:
        """The calibration ``query``'s mode was fitted with (its fusion, for hybrid), or
        :class:`~tiervec.errors.CalibrationMissing` saying how to fit one."""
        kind = query.mode.value
        return checked_model(self.calibration(kind), kind, self._fusion(query).to_dict(),
                             str(self.path))
