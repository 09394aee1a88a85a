"""Semantic vectors of arbitrary titles from the e5 teacher (mean-pooled, L2-normalised), for logs in any language.

The teacher's vocabulary is pruned to the pieces these titles use first, so the embedding table stays small.
`TitleEncoder` keeps the encoder trainable (seed 003's end-to-end item encoder); `e5_vectors` is its frozen use.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from export.encoder import Encoder
from export.teacher_file import TeacherFile, encoder_state_dict, find_wheel_teacher, read_teacher
from export.tokenizer import build_tokenizer
from export.vocab_prune import prune

E5_PREFIX = "query: "  # e5's prefix for symmetric tasks


class TitleEncoder(nn.Module):
    """The e5 encoder over a fixed list of titles: item rows (N,) -> unit vectors (N, H).

    Row r is titles[r - 1]; row 0 is padding and maps to the zero vector (as in `ItemTable`)."""

    def __init__(self, titles: list[str], teacher: TeacherFile | str | Path | None = None, max_length: int = 64):
        super().__init__()
        texts = [E5_PREFIX + t for t in titles]
        if not isinstance(teacher, TeacherFile):
            teacher = read_teacher(teacher or find_wheel_teacher())
        self.teacher, _ = prune(teacher, texts)
        tf = self.teacher
        tok = build_tokenizer(tf.pieces, tf.scores, tf.unk, tf.bos, tf.eos, tf.norm_map)
        tok.enable_truncation(max_length)
        tok.enable_padding(pad_id=tf.pad)
        enc = tok.encode_batch(texts)
        ids = torch.tensor([[tf.pad] * len(enc[0].ids)] + [e.ids for e in enc])
        mask = torch.tensor([[0] * len(enc[0].ids)] + [e.attention_mask for e in enc])
        self.register_buffer("ids", ids, persistent=False)
        self.register_buffer("mask", mask, persistent=False)
        self.encoder = Encoder(tf.config)
        self.encoder.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in encoder_state_dict(tf).items()})

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        mask = self.mask[rows]
        length = max(int(mask.sum(dim=1).max()), 1)  # trim the padding every row of this batch shares
        pooled = self.encoder(self.ids[rows, :length], mask[:, :length])[1]
        return F.normalize(pooled.float(), dim=-1) * (rows > 0)[:, None]

    @torch.no_grad()
    def table(self, batch: int = 256) -> torch.Tensor:
        """Every row's vector, (1 + len(titles), H), row 0 zeros."""
        rows = torch.arange(len(self.ids), device=self.ids.device)
        return torch.cat([self(rows[i:i + batch]) for i in range(0, len(rows), batch)])


def e5_vectors(titles: list[str], batch: int = 128, max_length: int = 64) -> dict[str, np.ndarray]:
    table = TitleEncoder(titles, max_length=max_length).eval().table(batch).numpy()
    return dict(zip(titles, table[1:]))


def bing_titles(data_dir: Path) -> list[str]:
    root = Path(data_dir) / "dkn_bing_news_sample"
    return sorted({line.split("\t")[1] for name in ("train", "test")
                   for line in (root / f"raw_{name}.txt").read_text(encoding="utf-8").splitlines() if line.strip()})
