"""The search defaults a collection keeps in its manifest (``tiervec tune --apply``): the
hybrid fusion and the relevance calibrations by mode; read the same way by one collection
and by a sharded one (whose shards each keep them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tiervec.search import FusionConfig, Query
from tiervec.search.cutoff import RelevanceModel, checked_model


@dataclass(frozen=True)
class SearchDefaults:
    """A manifest's ``search`` settings (the first shard's, for a sharded collection), read:
    the fusion, the calibrations and the checks a search makes of them."""

    stored: dict[str, Any]
    #: the collection's folder, named in errors
    where: str

    @property
    def fusion(self) -> FusionConfig:
        """The fusion a hybrid search uses unless told otherwise (``tiervec tune --apply``)."""
        stored = self.stored.get("fusion")
        return FusionConfig.stored(stored) if stored else FusionConfig()

    @property
    def fusion_tuned(self) -> bool:
        """Whether :attr:`fusion` was stored by ``tiervec tune --apply`` (else the default)."""
        return "fusion" in self.stored

    def calibration(self, kind: str) -> RelevanceModel | None:
        """The fitted relevance calibration of a search mode (``None``: never fitted)."""
        stored = self.stored.get("calibration", {}).get(kind)
        return RelevanceModel.from_dict(stored) if stored else None

    def fusion_for(self, query: Query) -> FusionConfig:
        """The fusion ``query`` asks for, else the collection's."""
        given = query.options.fusion
        return FusionConfig.from_dict(given) if given is not None else self.fusion

    def relevance_model(self, query: Query) -> RelevanceModel:
        """The calibration ``query``'s mode was fitted with (its fusion, for hybrid), or
        :class:`~tiervec.errors.CalibrationMissing` saying how to fit one."""
        kind = query.mode.value
        return checked_model(self.calibration(kind), kind, self.fusion_for(query).to_dict(),
                             self.where)
