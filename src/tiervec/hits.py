"""Search results as hits with their documents: what the CLI prints and the server returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tiervec.search import Searchable, SearchResult


@dataclass(frozen=True)
class Hit:
    """One result: its rank (from 1), id, score and document (title, text, metadata)."""

    rank: int
    id: str
    score: float
    title: str = ""
    text: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "id": self.id, "score": self.score, "title": self.title,
                "text": self.text, "metadata": dict(self.metadata)}


def to_hits(searchable: Searchable, result: SearchResult) -> list[list[Hit]]:
    """Each query's hits (padding dropped), documents fetched in one look-up."""
    wanted = [[str(i) for i in row if i != ""] for row in result.ids]
    docs = iter(searchable.get([i for row in wanted for i in row]))
    out = []
    for ids, scores in zip(wanted, result.scores, strict=True):
        hits = []
        for rank, (doc_id, score) in enumerate(zip(ids, scores, strict=False), start=1):
            doc = next(docs)
            hits.append(Hit(rank=rank, id=doc_id, score=float(score),
                            title=doc.title if doc else "", text=doc.text if doc else "",
                            metadata=dict(doc.metadata) if doc else {}))
        out.append(hits)
    return out
