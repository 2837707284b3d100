"""BEIR-layout datasets: ``corpus.jsonl(.gz)``, ``queries.jsonl(.gz)``, ``qrels/<split>.tsv``."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tiervec.corpus import Document, corpus_file, iter_jsonl, open_text, read_corpus
from tiervec.errors import CorpusNotFound, MalformedCorpus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BeirDataset:
    """A BEIR dataset split: the queries that have judgements, and the judgements.

    ``qrels[query_id][doc_id] = relevance`` (an int, 0 = judged not relevant).
    """

    name: str
    path: Path
    split: str
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]

    def corpus(self) -> Iterator[Document]:
        """The corpus documents, in file order."""
        return read_corpus(self.path)


def load_beir(path: str | Path, split: str = "test") -> BeirDataset:
    """Load the queries and relevance judgements of ``split`` from a BEIR folder."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise CorpusNotFound(
            f"BEIR dataset folder {str(folder)!r} does not exist; point to a folder with "
            "corpus.jsonl(.gz), queries.jsonl(.gz) and qrels/<split>.tsv"
        )
    corpus_file(folder)  # fail early if the corpus is missing
    qrels = _read_qrels(folder, split)
    queries_path = _first(folder, ("queries.jsonl", "queries.jsonl.gz"))
    texts: dict[str, str] = {}
    for number, record in iter_jsonl(queries_path):
        if not isinstance(record, dict) or "_id" not in record or "text" not in record:
            raise MalformedCorpus(
                f"{queries_path.name} line {number}: a query needs '_id' and 'text' fields"
            )
        texts[str(record["_id"])] = str(record["text"])
    unknown = [q for q in qrels if q not in texts]
    if unknown:
        log.warning("%d judged queries have no text in %s (e.g. %s); they are skipped",
                    len(unknown), queries_path.name, unknown[:3])
    queries = {q: texts[q] for q in qrels if q in texts}
    if not queries:
        raise MalformedCorpus(
            f"none of the {len(qrels)} queries judged in qrels/{split}.tsv has a text in "
            f"{queries_path.name}; check that both files belong to the same dataset"
        )
    return BeirDataset(
        name=folder.name, path=folder, split=split, queries=queries,
        qrels={q: qrels[q] for q in queries},
    )


def _first(folder: Path, names: tuple[str, ...]) -> Path:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise CorpusNotFound(f"{str(folder)!r} has none of {', '.join(names)}")


def _read_qrels(folder: Path, split: str) -> dict[str, dict[str, int]]:
    path = folder / "qrels" / f"{split}.tsv"
    if not path.is_file():
        splits = sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))
        raise CorpusNotFound(
            f"{str(path)!r} does not exist; available splits: {splits or 'none'} "
            "(choose one with --split)"
        )
    qrels: dict[str, dict[str, int]] = {}
    with open_text(path) as fh:
        for number, line in enumerate(fh, start=1):
            # BEIR: tab-separated 'query-id corpus-id score'; TREC: 'qid 0 docid rel'
            fields = line.rstrip("\r\n").split("\t") if "\t" in line else line.split()
            if not any(f.strip() for f in fields):
                continue
            if len(fields) not in (3, 4):
                raise MalformedCorpus(
                    f"{path.name} line {number}: expected 'query-id<TAB>corpus-id<TAB>score' "
                    f"(or TREC 'qid 0 docid rel'), got {line.rstrip()!r}"
                )
            qid, did, score = fields[0], fields[-2], fields[-1]
            try:
                relevance = int(float(score))
            except ValueError:
                if number == 1:  # a header line
                    continue
                raise MalformedCorpus(
                    f"{path.name} line {number}: relevance {score!r} is not a number"
                ) from None
            qrels.setdefault(qid, {})[did] = relevance
    return qrels
