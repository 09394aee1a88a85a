"""Semantic vectors of arbitrary titles from the e5 teacher (mean-pooled, L2-normalised), for logs in any language.

The teacher's vocabulary is pruned to the pieces these titles use first, so the embedding table stays small.
`TitleEncoder` keeps a text model trainable over a log's titles (seed 003's end-to-end item encoder);
`e5_vectors` is the frozen e5 one.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edge_rec_export.models.encoder import Encoder
from edge_rec_export.data.teacher_file import TeacherFile, encoder_state_dict, find_wheel_teacher, read_teacher
from edge_rec_export.data.tokenizer import build_tokenizer
from edge_rec_export.data.vocab_prune import prune

E5_PREFIX = "query: "  # e5's prefix for symmetric tasks


class Pooled(nn.Module):
    """An `Encoder`'s mean-pooled output: (input_ids, attention_mask) -> (B, H)."""

    def __init__(self, encoder: Encoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(input_ids, attention_mask)[1]


class TitleEncoder(nn.Module):
    """A text model over a fixed list of tokenised titles: item rows (N,) -> unit vectors (N, H).

    `model(input_ids, attention_mask)` gives a title's vector; `ids` / `mask` (n, T) hold the titles padded to a common
    length. Row r is title r - 1; row 0 is padding and maps to the zero vector (as in `ItemTable`)."""

    def __init__(self, model: nn.Module, ids: torch.Tensor, mask: torch.Tensor):
        super().__init__()
        self.model = model
        self.register_buffer("ids", torch.cat([ids[:1] * 0, ids]), persistent=False)
        self.register_buffer("mask", torch.cat([mask[:1] * 0, mask]), persistent=False)

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        mask = self.mask[rows]
        length = max(int(mask.sum(dim=1).max()), 1)  # trim the padding every row of this batch shares
        vec = self.model(self.ids[rows, :length], mask[:, :length])
        return F.normalize(vec.float(), dim=-1) * (rows > 0)[:, None]

    @torch.no_grad()
    def table(self, batch: int = 256) -> torch.Tensor:
        """Every row's vector, (1 + titles, H), row 0 zeros."""
        rows = torch.arange(len(self.ids), device=self.ids.device)
        return torch.cat([self(rows[i:i + batch]) for i in range(0, len(rows), batch)])


def tokenise(tokenizer, texts: list[str], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, mask) (n, T), padded with `pad_id` to the longest text; the tokenizer's own truncation applies."""
    enc = tokenizer.encode_batch(texts)
    width = max(len(e.ids) for e in enc)
    ids = torch.full((len(enc), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(enc), width), dtype=torch.long)
    for r, e in enumerate(enc):
        ids[r, :len(e.ids)] = torch.tensor(e.ids)
        mask[r, :len(e.ids)] = 1
    return ids, mask


def e5_title_encoder(titles: list[str], teacher: TeacherFile | str | Path | None = None, max_length: int = 64
                     ) -> TitleEncoder:
    """The e5 teacher (pruned to these titles' pieces) over `titles`, e5's query prefix added."""
    texts = [E5_PREFIX + t for t in titles]
    if not isinstance(teacher, TeacherFile):
        teacher = read_teacher(teacher or find_wheel_teacher())
    tf, _ = prune(teacher, texts)
    tok = build_tokenizer(tf.pieces, tf.scores, tf.unk, tf.bos, tf.eos, tf.norm_map)
    tok.enable_truncation(max_length)
    encoder = Encoder(tf.config)
    encoder.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in encoder_state_dict(tf).items()})
    return TitleEncoder(Pooled(encoder), *tokenise(tok, texts, tf.pad))


def e5_vectors(titles: list[str], batch: int = 128, max_length: int = 64) -> dict[str, np.ndarray]:
    table = e5_title_encoder(titles, max_length=max_length).eval().table(batch).numpy()
    return dict(zip(titles, table[1:]))


def bing_titles(data_dir: Path) -> list[str]:
    root = Path(data_dir) / "dkn_bing_news_sample"
    return sorted({line.split("\t")[1] for name in ("train", "test")
                   for line in (root / f"raw_{name}.txt").read_text(encoding="utf-8").splitlines() if line.strip()})
