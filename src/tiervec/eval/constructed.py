"""Test collections built from a recipe, to measure what one retriever cannot do.

:func:`write_attribute_set` follows the recipe of "On the Theoretical Limitations of
Embedding-Based Retrieval" (LIMIT): documents list what a person likes; a query asks who
likes one thing, and exactly two documents answer it; the pairs of a small core of documents
are all covered, one query each, so a single vector per document would have to place every
pair of the core at the top for some query. The attributes are single words, so BM25 finds
the two answers by their one rare term, while a dense model sees a long list of unrelated
words in each document. Distractor documents list other words. The set is written as a BEIR
folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/test.tsv`` and, for tuning,
``qrels/train.tsv`` over a disjoint share of the queries).

Built here from a word list the caller gives (e.g. a model's vocabulary), seeded; the
published LIMIT data is not used.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from itertools import combinations
from pathlib import Path

from tiervec.lexical import Analyzer, LexicalConfig

#: Given names and family names for the people the documents describe.
_GIVEN = ("Ada", "Bram", "Cleo", "Dev", "Edda", "Finn", "Gia", "Hugo", "Ines", "Jonas",
          "Kira", "Lev", "Mina", "Noor", "Otto", "Pia", "Quinn", "Rosa", "Sami", "Tove",
          "Uma", "Vik", "Wren", "Xena", "Yusuf", "Zoe")
_FAMILY = ("Alder", "Brook", "Crane", "Dale", "Ellis", "Frost", "Grove", "Hale", "Irving",
           "Joyce", "Kemp", "Lowe", "Marsh", "Nash", "Orr", "Pike", "Quill", "Reed", "Shaw",
           "Thorne", "Upton", "Vance", "Wolfe", "Yates")


def write_attribute_set(folder: str | Path, words: Sequence[str], *, core: int = 46,
                        distractors: int = 954, attributes: int = 45, train_share: float = 0.3,
                        seed: int = 0) -> Path:
    """Write a LIMIT-style set into ``folder``: ``core`` documents whose every pair answers
    one query (``core * (core - 1) / 2`` queries, each asking for one word only that pair
    likes), and ``distractors`` documents listing ``attributes`` words each that no query
    asks for. ``words`` must hold at least as many distinct words as the queries plus the
    distractors' pool need. ``train_share`` of the queries go to ``qrels/train.tsv`` (for
    tuning), the rest to ``qrels/test.tsv``. Returns the folder."""
    rng = random.Random(seed)
    pool = sorted(set(words))
    pairs = list(combinations(range(core), 2))
    if len(pool) < len(pairs) + attributes * 2:
        raise ValueError(f"{len(pool)} distinct words; the set needs at least "
                         f"{len(pairs) + attributes * 2}")
    rng.shuffle(pool)
    asked, spare = pool[:len(pairs)], pool[len(pairs):]
    liked: list[list[str]] = [[] for _ in range(core + distractors)]
    for (a, b), word in zip(pairs, asked, strict=True):
        liked[a].append(word)
        liked[b].append(word)
    for doc in range(core, core + distractors):
        liked[doc] = rng.sample(spare, attributes)
    order = list(range(core + distractors))
    rng.shuffle(order)  # the core is not the first documents
    names = _names(len(order), rng)
    folder = Path(folder)
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as out:
        for place, doc in enumerate(order):
            things = liked[doc][:]
            rng.shuffle(things)
            text = f"{names[place]} likes {', '.join(things[:-1])} and {things[-1]}."
            out.write(json.dumps({"_id": f"d{doc}", "title": "", "text": text}) + "\n")
    queries = [(f"q{i}", word, pair) for i, (pair, word) in enumerate(zip(pairs, asked,
                                                                           strict=True))]
    rng.shuffle(queries)
    cut = round(len(queries) * train_share)
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as out:
        for qid, word, _ in queries:
            out.write(json.dumps({"_id": qid, "text": f"Who likes {word}?"}) + "\n")
    for split, chosen in (("train", queries[:cut]), ("test", queries[cut:])):
        with open(folder / "qrels" / f"{split}.tsv", "w", encoding="utf-8") as out:
            out.write("query-id\tcorpus-id\tscore\n")
            for qid, _, (a, b) in chosen:
                out.write(f"{qid}\td{a}\t1\n{qid}\td{b}\t1\n")
    return folder


def _names(n: int, rng: random.Random) -> list[str]:
    """``n`` distinct full names (with a middle initial once the pairs run out)."""
    full = [f"{g} {f}" for g in _GIVEN for f in _FAMILY]
    rng.shuffle(full)
    letters = "ABCDEFGHJKLMNPRSTVW"
    names = full[:n]
    i = 0
    while len(names) < n:
        g, f = full[i % len(full)].split()
        names.append(f"{g} {letters[(i // len(full)) % len(letters)]}. {f}")
        i += 1
    return names


def vocabulary_words(vocab_file: str | Path, *, min_length: int = 5,
                     max_length: int = 10) -> list[str]:
    """Whole lower-case alphabetic words of a WordPiece vocabulary file (a model's
    ``vocab.txt``) that BM25's analyzer keeps as one term of their own (no stop words, one
    word per stem), as attribute words the model knows."""
    analyzer = Analyzer(LexicalConfig())
    kept: dict[str, str] = {}
    for line in Path(vocab_file).read_text(encoding="utf-8").splitlines():
        word = line.strip()
        if not (word.isascii() and word.isalpha() and word.islower()
                and min_length <= len(word) <= max_length):
            continue
        terms = analyzer.terms(word)
        if len(terms) == 1:
            kept.setdefault(terms[0], word)
    return list(kept.values())
