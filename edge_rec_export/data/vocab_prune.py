"""Prune the teacher's 250k-piece vocabulary to what the target corpora use.

Kept: every piece the full tokenizer produces on the corpora, every single-character piece (all CJK characters
among them, so unseen Chinese text still tokenizes without <unk>), and the special pieces. Ids are remapped in
their original order. For any text of the corpora the pruned tokenizer picks the same segmentation (the Unigram
lattice's best path is still there and every other path is a subset), so the model's outputs are unchanged.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from edge_rec_export.data.teacher_file import TeacherFile
from edge_rec_export.data.tokenizer import build_tokenizer


def pieces_used(tf: TeacherFile, texts: list[str]) -> set[int]:
    tok = build_tokenizer(tf.pieces, tf.scores, tf.unk, tf.bos, tf.eos, tf.norm_map)
    used: set[int] = set()
    for enc in tok.encode_batch(texts):
        used.update(enc.ids)
    return used


def prune(tf: TeacherFile, texts: list[str]) -> tuple[TeacherFile, np.ndarray]:
    """Return the pruned teacher and `keep` (new id -> old id)."""
    keep_set = pieces_used(tf, texts)
    keep_set |= {i for i, p in enumerate(tf.pieces) if len(p.lstrip("▁")) == 1 or p == "▁"}
    keep_set |= {tf.bos, tf.eos, tf.pad, tf.unk}
    keep = np.array(sorted(keep_set), dtype=np.int64)
    new_id = {int(old): new for new, old in enumerate(keep)}
    tensors = dict(tf.tensors)
    tensors["emb.word"] = tf.tensors["emb.word"].rows(keep, tf.config.hidden, tf.block)
    pruned = replace(tf, config=replace(tf.config, vocab_size=len(keep), pad_id=new_id[tf.pad]),
                     pieces=[tf.pieces[i] for i in keep], scores=tf.scores[keep],
                     bos=new_id[tf.bos], eos=new_id[tf.eos], pad=new_id[tf.pad], unk=new_id[tf.unk],
                     tensors=tensors)
    return pruned, keep
