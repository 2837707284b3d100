"""The queries a plan is measured with: labelled (BEIR qrels), user-supplied, or pseudo-queries.

With labels, a setting's quality is its nDCG@k as a fraction of float32's on the same queries.
Without, it is its agreement with exact float32 search (recall@k vs exact): Distill-VQ's point
that ranking fidelity is what compression must keep. Pseudo-queries are the titles of sampled
documents (or, without titles, one sentence of each), so a plan needs nothing but the corpus.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

import numpy as np

from tiervec.errors import PlanError
from tiervec.eval.beir import BeirDataset
from tiervec.eval.evaluate import labelled_set
from tiervec.eval.queries import QuerySet
from tiervec.search import Searchable

log = logging.getLogger(__name__)

#: Above this share of judged documents missing from the collection, the qrels are taken to
#: belong to another corpus.
MAX_UNKNOWN_SHARE = 0.5
#: Queries sampled when the user gives none.
DEFAULT_PSEUDO_QUERIES = 600
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def labelled_queries(collection: Searchable, dataset: BeirDataset) -> QuerySet:
    """A BEIR split's judged queries, encoded with the collection's model (cached).

    Judged documents the collection does not hold are logged (no setting can return them,
    e.g. empty documents skipped when the corpus was indexed); when they are more than
    :data:`MAX_UNKNOWN_SHARE` of the judged ones, the qrels do not belong to the collection
    and :class:`PlanError` is raised.
    """
    judged = sorted({d for docs in dataset.qrels.values() for d in docs})
    unknown = collection.missing(judged)
    examples = ", ".join(map(repr, unknown[:3]))
    if unknown and len(unknown) <= MAX_UNKNOWN_SHARE * len(judged):
        log.warning("%d of the %d documents judged in %s %s are not in the collection (e.g. "
                    "%s); no setting can return them", len(unknown), len(judged), dataset.name,
                    dataset.split, examples)
    elif unknown:
        raise PlanError(
            f"{len(unknown)} of the {len(judged)} documents judged in {dataset.name} "
            f"{dataset.split} are not in the collection (e.g. {examples}); index the "
            "dataset's own corpus into the collection, or give qrels that match it"
        )
    return labelled_set(collection, dataset)


def text_queries(collection: Searchable, texts: Sequence[str], name: str) -> QuerySet:
    """User-supplied unlabelled queries, encoded with the collection's model."""
    texts = [t.strip() for t in texts if t.strip()]
    if len(texts) < 2:
        raise PlanError(
            f"{name}: need at least 2 non-empty queries to plan with, got {len(texts)}; give "
            "one query per line, or leave the queries out to use pseudo-queries"
        )
    vectors = collection.encode_queries(texts)
    return QuerySet(name, [f"q{i}" for i in range(len(texts))], vectors, texts=list(texts))


def pseudo_queries(collection: Searchable, n: int = DEFAULT_PSEUDO_QUERIES,
                   seed: int = 0) -> QuerySet:
    """Titles (or one sentence) of ``n`` sampled documents, as unlabelled queries."""
    count = len(collection)
    if count < 2:
        raise PlanError(
            f"the collection holds {count} document(s); index a corpus before planning"
        )
    docs = collection.get(collection.sample_ids(n, seed))
    rng = np.random.default_rng(seed + 1)
    texts = []
    for doc in docs:
        if doc is None:
            continue
        if doc.title.strip():
            texts.append(doc.title)
            continue
        sentences = [s for s in _SENTENCE.split(doc.text) if len(s.split()) >= 4]
        if sentences:
            texts.append(sentences[int(rng.integers(len(sentences)))])
    return text_queries(collection, texts, f"{len(texts)} pseudo-queries (sampled titles)")
