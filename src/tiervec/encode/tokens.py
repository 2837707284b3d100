"""Word pieces of whole texts, and the model's output for each of them, however long the text.

A text longer than the model's window is read in overlapping windows (the "macro chunks" of
long late chunking): consecutive windows share a quarter of their content, and a word piece in
the shared part takes its output from the window where it sits farther from the edge, so every
output has at least an eighth of a window of context on each side (but at a text's ends).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tiervec.errors import MissingDependency


def offsets(tokenizer: Any, texts: Sequence[str]) -> list[np.ndarray]:
    """Each text's word pieces as character ranges ``(n, 2)`` int64."""
    if not getattr(tokenizer, "is_fast", True):
        raise MissingDependency("chunking needs the model's fast tokenizer (character "
                                "offsets); install `tokenizers` or use another model")
    if not texts:
        return []
    found = tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True,
                      verbose=False)["offset_mapping"]
    return [np.asarray(o, dtype=np.int64).reshape(-1, 2) for o in found]


def ids(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """Each text's word-piece ids (no special tokens, no truncation)."""
    if not texts:
        return []
    return tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]


def windows(n: int, capacity: int) -> list[tuple[int, int, int, int]]:
    """The windows over ``n`` word pieces, each at most ``capacity`` long: ``(start, stop,
    keep_lo, keep_hi)``, where ``[keep_lo, keep_hi)`` are the pieces whose output is taken
    from that window (the kept ranges tile ``0 .. n`` exactly)."""
    if n <= capacity:
        return [(0, n, 0, n)]
    overlap = capacity // 4
    step = capacity - overlap
    starts = sorted({*range(0, n - capacity, step), n - capacity})
    out = []
    for w, start in enumerate(starts):
        lo = 0 if w == 0 else (start + starts[w - 1] + capacity) // 2
        hi = n if w == len(starts) - 1 else (starts[w + 1] + start + capacity) // 2
        out.append((start, min(start + capacity, n), lo, hi))
    return out


def token_outputs(
    model: Any, tokenizer: Any, texts: Sequence[str], prefix: str, window: int,
    batch_size: int, progress: Callable[[int], None] | None = None,
) -> list[np.ndarray]:
    """The transformer's last hidden state for every word piece of each text ``(n_i, d)``
    float32 (``prefix``'s pieces are read at the start of every window, their outputs
    dropped). ``progress(n)``: ``n`` more texts done."""
    import torch

    before, after = _specials(tokenizer)
    head = ids(tokenizer, [prefix])[0] if prefix else []
    capacity = window - len(before) - len(after) - len(head)
    if capacity < 8:
        raise ValueError(f"a window of {window} tokens leaves no room for text")
    pieces = ids(tokenizer, texts)
    dim = int(model.config.hidden_size)
    outs = [np.empty((len(p), dim), np.float32) for p in pieces]
    jobs = [(i, *w) for i, p in enumerate(pieces) if p for w in windows(len(p), capacity)]
    left = np.bincount([j[0] for j in jobs], minlength=len(pieces))
    if progress is not None and (empty := int(np.sum(left == 0))):
        progress(empty)
    order = sorted(range(len(jobs)), key=lambda j: jobs[j][2] - jobs[j][1], reverse=True)
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id or 0
    for at in range(0, len(order), batch_size):
        batch = [jobs[j] for j in order[at : at + batch_size]]
        inputs = [before + head + pieces[i][a:b] + after for i, a, b, _, _ in batch]
        width = max(len(x) for x in inputs)
        input_ids = torch.full((len(inputs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(inputs), width), dtype=torch.long)
        for r, x in enumerate(inputs):
            input_ids[r, : len(x)] = torch.tensor(x)
            mask[r, : len(x)] = 1
        with torch.inference_mode():
            hidden = model(input_ids=input_ids.to(device),
                           attention_mask=mask.to(device)).last_hidden_state
        hidden = hidden.float().cpu().numpy()
        finished = 0
        for r, (i, a, _, lo, hi) in enumerate(batch):
            first = len(before) + len(head) + (lo - a)
            outs[i][lo:hi] = hidden[r, first : first + (hi - lo)]
            left[i] -= 1
            finished += int(left[i] == 0)
        if progress is not None and finished:
            progress(finished)
    return outs


def _specials(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The special tokens the model puts before and after a text (e.g. ``[CLS]``, ``[SEP]``)."""
    bare = tokenizer("x", add_special_tokens=False)["input_ids"]
    full = tokenizer("x")["input_ids"]
    for at in range(len(full) - len(bare) + 1):
        if full[at : at + len(bare)] == bare:
            return full[:at], full[at + len(bare):]
    raise ValueError("cannot tell the tokenizer's special tokens from a text's")
