"""Build a `tokenizers` Unigram tokenizer equivalent to the teacher's own (TEACHER_FORMAT.md)."""
from __future__ import annotations

import re

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors


def build_tokenizer(pieces: list[str], scores, unk: int, bos: int, eos: int,
                    norm_map: dict[int, list[int]]) -> Tokenizer:
    """Unigram model; normaliser = drop/space replacements then NFKC; Metaspace "▁" always prepended;
    template `<s> $A </s>`."""
    tok = Tokenizer(models.Unigram([(p, float(s)) for p, s in zip(pieces, scores)], unk_id=unk))
    steps = []
    for target, chars in (("", [cp for cp, v in norm_map.items() if not v]),
                          (" ", [cp for cp, v in norm_map.items() if v == [32] and cp != 32])):
        if chars:
            steps.append(normalizers.Replace(Regex("[" + "".join(re.escape(chr(c)) for c in chars) + "]"), target))
    tok.normalizer = normalizers.Sequence(steps + [normalizers.NFKC()])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(
        single=f"{pieces[bos]} $A {pieces[eos]}", special_tokens=[(pieces[bos], bos), (pieces[eos], eos)])
    return tok
