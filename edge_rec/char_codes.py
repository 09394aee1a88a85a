"""A classifier's optional second input: each text's characters as Unicode code points.

A bundle whose classifier declares the input `char_ids` (B, W) gets the lower-cased code points of each (stripped) text, cut
to `MAX_CHARS`, 0-padded. The graph hashes their n-grams itself (a linear wide part beside the encoder, whose
logits join the encoder's), so the runtime's share is only this: the same function feeds training and inference.
"""
from __future__ import annotations

import numpy as np

CHAR_INPUT = "char_ids"
MAX_CHARS = 64


def char_codes(texts: list[str], width: int | None = None) -> np.ndarray:
    """(B, W) int64 code points; W = the longest text (at most MAX_CHARS) unless `width` is given."""
    codes = [[ord(ch) for ch in t.strip().lower()[:MAX_CHARS]] for t in texts]
    out = np.zeros((len(texts), width or max(1, max(map(len, codes), default=1))), dtype=np.int64)
    for row, c in enumerate(codes):
        c = c[:out.shape[1]]
        out[row, :len(c)] = c
    return out
