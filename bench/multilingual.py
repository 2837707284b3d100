"""Cross-lingual retrieval: English queries against documents in other languages.

The set is built offline from human translations shipped in a PyPI package: pycountry's
gettext catalogues of ISO 3166 country names (249 countries, each named in every language
below by its translators). Queries are the English names; documents are the names in eight
languages (four of them in other scripts), all in one mixed-language collection. For each
query, its 8 translations are relevant. Measured with each packaged model's own encoder and
exact search: nDCG@10 over the mixed collection, and recall@1 per language (the right country
first among that language's 249 names). ``differs``: only the names that are not spelled as in
English (where a lexical match cannot help).

    python bench/multilingual.py [--models minilm,minilm-l3,e5,mpnet]

Writes bench/results/multilingual.json.
"""

from __future__ import annotations

import argparse
import gettext
from typing import Any

import numpy as np

from _common import print_table, write_json
from tiervec.encode import load_encoder
from tiervec.encode.models import find_model

LANGUAGES = ("de", "fr", "es", "ru", "ja", "zh_CN", "ar", "hi")


def country_set() -> tuple[list[str], list[tuple[int, str, str]]]:
    """English names, and ``(country, language, name)`` for every translated name."""
    import pycountry

    countries = list(pycountry.countries)
    english = [c.name for c in countries]
    docs = []
    for lang in LANGUAGES:
        catalogue = gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[lang])
        docs += [(i, lang, catalogue.gettext(name)) for i, name in enumerate(english)]
    return english, docs


def measure(model: str, english: list[str], docs: list[tuple[int, str, str]]) -> dict[str, Any]:
    encoder = load_encoder(model)
    queries = encoder.encode_queries(english)
    vectors = encoder.encode_documents([name for _, _, name in docs])
    owner = np.array([i for i, _, _ in docs])
    lang = np.array([lang for _, lang, _ in docs])
    same = np.array([name == english[i] for i, _, name in docs])
    scores = queries @ vectors.T
    top = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    gains = (owner[top] == np.arange(len(english))[:, None]).astype(float)
    discount = 1 / np.log2(np.arange(2, 12))
    ideal = discount[:len(LANGUAGES)].sum()
    out: dict[str, Any] = {"ndcg@10 (mixed)": round(float((gains @ discount).mean() / ideal), 4)}
    for code in LANGUAGES:
        cols = np.flatnonzero(lang == code)
        best = cols[np.argmax(scores[:, cols], axis=1)]
        hit = owner[best] == np.arange(len(english))
        differs = ~same[cols]  # rows of this language in country order
        out[code] = round(float(hit.mean()), 4)
        out[f"{code} differs"] = round(float(hit[differs].mean()), 4) if differs.any() else None
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="minilm,minilm-l3,e5,mpnet")
    args = parser.parse_args()
    english, docs = country_set()
    results = {}
    for name in args.models.split(","):
        row = find_model(name)
        if row is not None and not row.installed():
            continue
        results[row.name if row else name] = measure(name, english, docs)
    columns = ["model", "nDCG@10 mixed", *LANGUAGES]
    print_table(f"English country names -> their names in {len(LANGUAGES)} languages "
                f"({len(english)} countries; recall@1 per language, in brackets where the name "
                "is not spelled as in English)", columns,
                [[m, r["ndcg@10 (mixed)"],
                  *[f"{r[c]:.3f} ({r[c + ' differs']:.3f})" for c in LANGUAGES]]
                 for m, r in results.items()])
    write_json("multilingual", {"languages": list(LANGUAGES), "countries": len(english),
                                "documents": len(docs), "results": results})


if __name__ == "__main__":
    main()
