"""Collections: a folder of documents and vectors searched through a chain of tiers."""

from tiervec.collection.core import Collection
from tiervec.collection.views import TieredView

__all__ = ["Collection", "TieredView"]
