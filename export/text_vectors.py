"""Semantic vectors of arbitrary titles from the e5 teacher (mean-pooled, L2-normalised), for logs in any language.

The teacher's vocabulary is pruned to the pieces these titles use first, so the embedding table stays small.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from export.encoder import Encoder
from export.teacher_file import encoder_state_dict, find_wheel_teacher, read_teacher
from export.tokenizer import build_tokenizer
from export.vocab_prune import prune

E5_PREFIX = "query: "  # e5's prefix for symmetric tasks


@torch.no_grad()
def e5_vectors(titles: list[str], batch: int = 128, max_length: int = 64) -> dict[str, np.ndarray]:
    texts = [E5_PREFIX + t for t in titles]
    tf, _ = prune(read_teacher(find_wheel_teacher()), texts)
    tok = build_tokenizer(tf.pieces, tf.scores, tf.unk, tf.bos, tf.eos, tf.norm_map)
    tok.enable_truncation(max_length)
    tok.enable_padding(pad_id=tf.pad)
    encoder = Encoder(tf.config).eval()
    encoder.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in encoder_state_dict(tf).items()})
    out = {}
    for i in range(0, len(texts), batch):
        enc = tok.encode_batch(texts[i:i + batch])
        ids = torch.tensor([e.ids for e in enc])
        mask = torch.tensor([e.attention_mask for e in enc])
        vec = F.normalize(encoder(ids, mask)[1], dim=-1).numpy()
        out.update(zip(titles[i:i + batch], vec))
    return out


def bing_titles(data_dir: Path) -> list[str]:
    root = Path(data_dir) / "dkn_bing_news_sample"
    return sorted({line.split("\t")[1] for name in ("train", "test")
                   for line in (root / f"raw_{name}.txt").read_text(encoding="utf-8").splitlines() if line.strip()})
