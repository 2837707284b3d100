"""How vectors, documents, filters and results travel over HTTP: shared by the server and
:class:`tiervec.Client`.

Vectors go as JSON lists of numbers, or compactly as ``{"base64": ..., "shape": [n, dim],
"dtype": "float32"}``: the little-endian float32 bytes of the ``(n, dim)`` array in row order,
base64-encoded. Parsing JSON floats dominates bulk ingest over HTTP; the binary form is
decoded without parsing a number.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tiervec._validate import as_vectors
from tiervec.corpus import Document
from tiervec.errors import InvalidRequest, InvalidVectors, LimitExceeded

#: The one dtype of the binary form.
DTYPE = "float32"
_LE_FLOAT32 = np.dtype("<f4")


def encode_vectors(vectors: Any) -> dict[str, Any]:
    """The binary form of ``vectors`` ``(n, dim)`` (or one ``(dim,)`` vector)."""
    arr = np.asarray(vectors, dtype=_LE_FLOAT32)
    if arr.ndim == 1:
        arr = arr[None, :]
    return {"base64": base64.b64encode(np.ascontiguousarray(arr).tobytes()).decode("ascii"),
            "shape": list(arr.shape), "dtype": DTYPE}


def decode_vectors(value: Any, dim: int | None, what: str = "vectors") -> np.ndarray:
    """A float32 ``(n, dim)`` array from a JSON list of lists, one list, or the binary form;
    checked (finite, of dimension ``dim``) as the library checks vectors."""
    if isinstance(value, Mapping):
        value = _from_binary(value, what)
    elif not isinstance(value, list):
        raise InvalidVectors(f"{what} must be a list of numbers, a list of such lists, or "
                             f"{{'base64', 'shape', 'dtype'}}; got {type(value).__name__}")
    return as_vectors(value, dim, what=what)


def _from_binary(value: Mapping[str, Any], what: str) -> np.ndarray:
    dtype = value.get("dtype", DTYPE)
    if dtype != DTYPE:
        raise InvalidVectors(f"{what}: dtype {dtype!r} is not supported; send little-endian "
                             f"{DTYPE} (dtype {DTYPE!r})")
    shape, data = value.get("shape"), value.get("base64")
    if (not isinstance(shape, Sequence) or len(shape) != 2
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                       for n in shape)):
        raise InvalidVectors(f"{what}: 'shape' must be [n, dim] (two whole numbers), got "
                             f"{shape!r}")
    if not isinstance(data, str):
        raise InvalidVectors(f"{what}: 'base64' must be a string of base64 text")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidVectors(f"{what}: 'base64' is not valid base64 text") from None
    n, dim = shape
    if len(raw) != 4 * n * dim:
        raise InvalidVectors(f"{what}: 'base64' holds {len(raw)} bytes, but shape {n}x{dim} "
                             f"of {DTYPE} needs {4 * n * dim}")
    return np.frombuffer(raw, dtype=_LE_FLOAT32).reshape(n, dim).astype(np.float32)


def count_vectors(value: Any) -> int:
    """How many vectors ``value`` (either form) holds, before decoding it."""
    if isinstance(value, Mapping):
        shape = value.get("shape")
        return int(shape[0]) if isinstance(shape, Sequence) and shape and \
            isinstance(shape[0], int) else 0
    if isinstance(value, list):
        return len(value) if value and isinstance(value[0], list) else 1
    return 0


def document_to_dict(doc: Document) -> dict[str, Any]:
    """A document as the API returns it."""
    return {"id": doc.id, "title": doc.title, "text": doc.text, "metadata": dict(doc.metadata)}


def document_from_dict(data: Mapping[str, Any]) -> Document:
    return Document(id=data["id"], text=data.get("text") or "", title=data.get("title") or "",
                    metadata=data.get("metadata") or {})


def filter_size(filt: Any, max_nodes: int, max_depth: int) -> None:
    """Raise :class:`LimitExceeded` if a dict filter has more than ``max_nodes`` values or
    nests deeper than ``max_depth`` (checked without recursion), or a string filter has more
    parentheses or characters than that allows."""
    if filt is None:
        return
    if isinstance(filt, str):
        depth = deepest = 0
        for ch in filt:
            depth += (ch in "([") - (ch in ")]")
            deepest = max(deepest, depth)
        if deepest > max_depth or len(filt) > 64 * max_nodes:
            raise LimitExceeded(f"the filter nests {deepest} levels in {len(filt)} characters; "
                                f"the server allows {max_depth} levels and "
                                f"{64 * max_nodes} characters")
        return
    if not isinstance(filt, Mapping):
        raise InvalidRequest(f"a filter is a string or an object, got {type(filt).__name__}")
    nodes, stack = 0, [(filt, 1)]
    while stack:
        value, depth = stack.pop()
        nodes += 1
        if depth > max_depth or nodes > max_nodes:
            raise LimitExceeded(f"the filter has more than {max_nodes} values or nests deeper "
                                f"than {max_depth} levels, the server's limits; split it or "
                                "use $in with a list")
        if isinstance(value, Mapping):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
