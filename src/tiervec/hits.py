"""Search results as hits with their documents: what the CLI prints and the server returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tiervec.search import Searchable, SearchResult


@dataclass(frozen=True)
class Hit:
    """One result: its rank (from 1), id, score and document (title, text, metadata); in a
    chunked collection ``span``, the character range of its best chunk in ``text``."""

    rank: int
    id: str
    score: float
    title: str = ""
    text: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    span: tuple[int, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"rank": self.rank, "id": self.id, "score": self.score, "title": self.title,
               "text": self.text, "metadata": dict(self.metadata)}
        if self.span is not None:
            out["span"] = list(self.span)
        return out


def to_hits(searchable: Searchable, result: SearchResult) -> list[list[Hit]]:
    """Each query's hits (padding dropped), documents fetched in one look-up."""
    wanted = [[str(i) for i in row if i != ""] for row in result.ids]
    docs = iter(searchable.get([i for row in wanted for i in row]))
    out = []
    for q, (ids, scores) in enumerate(zip(wanted, result.scores, strict=True)):
        hits = []
        for rank, (doc_id, score) in enumerate(zip(ids, scores, strict=False), start=1):
            doc = next(docs)
            span = None
            if result.spans is not None and result.spans[q, rank - 1, 0] >= 0:
                span = (int(result.spans[q, rank - 1, 0]), int(result.spans[q, rank - 1, 1]))
            hits.append(Hit(rank=rank, id=doc_id, score=float(score),
                            title=doc.title if doc else "", text=doc.text if doc else "",
                            metadata=dict(doc.metadata) if doc else {}, span=span))
        out.append(hits)
    return out
