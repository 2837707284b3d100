"""The one result type every search returns."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class SearchResult(NamedTuple):
    """Top-``k`` results of ``n_queries`` queries, best first.

    - ``ids``: ``(n_queries, k)`` object array of document ids (``""`` where fewer than ``k``
      documents exist).
    - ``scores``: ``(n_queries, k)`` float32 scores of the chain's last tier (``-inf`` padding);
      for a float32 last tier ``scores[i, j] = <q_i, d_j>``.
    """

    ids: np.ndarray
    scores: np.ndarray
