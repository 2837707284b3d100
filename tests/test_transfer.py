"""Leaving as easily as coming: a collection exported to Parquet and imported into another
holds the same documents, metadata and vectors; results as Arrow tables and pandas frames."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pyarrow")

import tiervec
from tiervec import Document
from tiervec.errors import EncoderRequired, MalformedCorpus

DIM = 16


def _collection(path, n: int = 300):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    docs = [Document(id=f"d{i}", title=f"Title {i}", text=f"text of {i} \u00e9\u4e2d",
                     metadata={"year": 1990 + i % 30, "tags": ["a", f"t{i % 3}"],
                               "score": i / 7, "ok": i % 2 == 0})
            for i in range(n)]
    col = tiervec.create(path, model=None, dim=DIM, tiers="float32", lexical=True)
    col.add(docs, vectors=x)
    col.delete([f"d{i}" for i in range(0, 40, 4)])
    col.upsert([Document(id="d1", text="replaced", metadata={"year": 2024})], vectors=x[2:3])
    return col, x


def test_export_then_import_keeps_documents_metadata_and_vectors(tmp_path):
    col, x = _collection(tmp_path / "a")
    with col:
        assert col.export_parquet(tmp_path / "out.parquet") == len(col) == 290
        ids = sorted(col.sample_ids(1000))
        want = col.get(ids)
        found = col.search_vectors(x[:20], 5)
    with tiervec.create(tmp_path / "b", model=None, dim=DIM, tiers="float32",
                        lexical=True) as copy:
        stats = copy.import_parquet(tmp_path / "out.parquet")
        assert stats.added == 290 and len(copy) == 290
        assert copy.get(ids) == want
        again = copy.search_vectors(x[:20], 5)
        np.testing.assert_array_equal(again.ids, found.ids)
        np.testing.assert_allclose(again.scores, found.scores, rtol=1e-6)
        assert copy.count({"year": 2024}) == 1 and copy.get(["d1"])[0].text == "replaced"
        assert copy.import_parquet(tmp_path / "out.parquet").replaced == 290  # idempotent


def test_import_names_what_is_wrong(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"doc": ["a"], "body": ["x"]}), tmp_path / "cols.parquet")
    pq.write_table(pa.table({"id": ["a"], "text": ["x"], "metadata": ["{not json"]}),
                   tmp_path / "meta.parquet")
    with tiervec.create(tmp_path / "c", model=None, dim=DIM) as col:
        with pytest.raises(MalformedCorpus, match="no 'id' and 'text' columns"):
            col.import_parquet(tmp_path / "cols.parquet")
        with pytest.raises(MalformedCorpus, match="'a': its metadata is not JSON"):
            col.import_parquet(tmp_path / "meta.parquet")
        pq.write_table(pa.table({"id": ["a"], "text": ["x"]}), tmp_path / "novec.parquet")
        with pytest.raises(EncoderRequired):
            col.import_parquet(tmp_path / "novec.parquet")
        assert len(col) == 0


def test_results_as_arrow_and_pandas(tmp_path):
    pytest.importorskip("pandas")
    col, x = _collection(tmp_path / "a", n=8)
    with col:
        found = col.search_vectors(x[4:7], 10)  # 6 live documents: padding in every row
        table = found.to_arrow()
        assert table.column_names == ["query", "rank", "id", "score"]
        assert table.num_rows == int((found.ids != "").sum()) == 3 * 6
        frame = found.to_pandas()
        first = frame[frame["query"] == 0].sort_values("rank")
        assert list(first["id"]) == [i for i in found.ids[0] if i]
        np.testing.assert_allclose(first["score"], found.scores[0][:6])


def test_the_cli_exports_and_imports(tmp_path):
    from typer.testing import CliRunner

    from tiervec.cli import app

    col, _ = _collection(tmp_path / "a", n=50)
    col.close()
    tiervec.create(tmp_path / "b", model=None, dim=DIM, tiers="float32").close()
    out = tmp_path / "a.parquet"
    done = CliRunner().invoke(app, ["export", str(tmp_path / "a"), str(out)])
    assert done.exit_code == 0, done.output
    assert "40 documents" in done.output
    done = CliRunner().invoke(app, ["import", str(out), str(tmp_path / "b")])
    assert done.exit_code == 0, done.output
    assert "40 added" in done.output
    for command in ("export", "import"):
        assert f"Example: tiervec {command} " in CliRunner().invoke(app, [command, "--help"]
                                                                     ).output.replace("\n", " ")
