"""What a bundle's tokenizer.json may contain: the parts the builder writes and other fixed-cost ones, checked on the
parsed JSON before `tokenizers` sees it. A tokenizer is code in disguise (a normalizer regex with catastrophic
backtracking took 54 s for one text; one that panics crashed the CLI; a Replace that grows a character 20,000 times
used 2.3 GB): regex patterns are refused except the single character classes the builder writes, replacements may not
grow the text, and the vocabulary's size is bounded.
"""
from __future__ import annotations

import re

from edge_rec.bundle import BundleError

MAX_TOKENIZER_BYTES = 32 << 20  # e5's full 250,002-piece tokenizer.json is 17 MB
MAX_PIECE_CHARS = 8_000_000  # the characters of every vocabulary piece together (e5's full vocabulary: ~1.9M)
MAX_PIECE_LENGTH = 512
MAX_ADDED_TOKENS = 1_000
MAX_TEMPLATE_PIECES = 8  # special tokens a post-processor may add around a text
MODELS = {"Unigram", "WordPiece", "BPE", "WordLevel"}
NORMALIZERS = {"Sequence", "Replace", "NFKC", "NFC", "NFD", "NFKD", "Lowercase", "Strip", "StripAccents",
               "BertNormalizer", "Precompiled", "Prepend"}
PRE_TOKENIZERS = {"Sequence", "Metaspace", "Whitespace", "WhitespaceSplit", "BertPreTokenizer", "Punctuation",
                  "Digits", "ByteLevel", "CharDelimiterSplit", "UnicodeScripts", "Split"}
DECODERS = {"Sequence", "Metaspace", "WordPiece", "ByteLevel", "BPEDecoder", "Fuse", "Strip", "ByteFallback", "CTC",
            "Replace"}
POST_PROCESSORS = {"TemplateProcessing", "BertProcessing", "RobertaProcessing", "ByteLevel", "Sequence"}
# One bracket expression of literal characters or escapes, nothing around it: matched in linear time.
CHAR_CLASS = re.compile(r"\[(?:[^\\\]]|\\.)+\]", re.DOTALL)


def check_tokenizer(data, where: str) -> None:
    """BundleError naming `where` and the offending part, or nothing."""
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        raise BundleError(f"{where}: not a tokenizers file (expected an object with a 'model')")
    _model(data["model"], where)
    _parts(data.get("normalizer"), NORMALIZERS, "normalizer", where)
    _parts(data.get("pre_tokenizer"), PRE_TOKENIZERS, "pre_tokenizer", where)
    _parts(data.get("decoder"), DECODERS, "decoder", where)
    _parts(data.get("post_processor"), POST_PROCESSORS, "post_processor", where)
    added = data.get("added_tokens") or []
    if not isinstance(added, list) or len(added) > MAX_ADDED_TOKENS or not all(
            isinstance(t, dict) and isinstance(t.get("content"), str) and len(t["content"]) <= MAX_PIECE_LENGTH
            for t in added):
        raise BundleError(f"{where}: added_tokens must be at most {MAX_ADDED_TOKENS} tokens of at most "
                          f"{MAX_PIECE_LENGTH} characters")


def _model(model: dict, where: str) -> None:
    kind = model.get("type")
    if kind not in MODELS:
        raise BundleError(f"{where}: model type {kind!r} is not one of {sorted(MODELS)}")
    vocab = model.get("vocab")
    if isinstance(vocab, list):  # Unigram: [[piece, score], ...]
        pieces = [p[0] if isinstance(p, list) and p else None for p in vocab]
    elif isinstance(vocab, dict):
        pieces = list(vocab)
    else:
        raise BundleError(f"{where}: model.vocab must be a list or an object")
    if not all(isinstance(p, str) and len(p) <= MAX_PIECE_LENGTH for p in pieces):
        raise BundleError(f"{where}: every vocabulary piece must be a string of at most {MAX_PIECE_LENGTH} characters")
    total = sum(map(len, pieces))
    if total > MAX_PIECE_CHARS:
        raise BundleError(f"{where}: the vocabulary's pieces hold {total} characters, past the limit of "
                          f"{MAX_PIECE_CHARS}")


def _parts(part, allowed: set[str], what: str, where: str) -> None:
    """A normalizer / pre-tokenizer / decoder / post-processor (possibly a Sequence of them) within `allowed`."""
    if part is None:
        return
    kind = part.get("type") if isinstance(part, dict) else None
    if kind not in allowed:
        raise BundleError(f"{where}: {what} type {kind!r} is not allowed in a bundle (allowed: {sorted(allowed)})")
    if kind == "Sequence":
        children = next((v for k, v in part.items() if k != "type" and isinstance(v, list)), [])
        for child in children:
            _parts(child, allowed, what, where)
        return
    pattern = part.get("pattern")
    if isinstance(pattern, dict) and "Regex" in pattern:
        regex = pattern["Regex"]
        if not (what == "normalizer" and kind == "Replace" and isinstance(regex, str) and CHAR_CLASS.fullmatch(regex)):
            raise BundleError(f"{where}: {what} {kind} has a regex pattern {str(regex)[:40]!r}; a bundle's tokenizer "
                              "may only replace single character classes like '[\\t\\n]'")
        longest = 1
    elif isinstance(pattern, dict) and isinstance(pattern.get("String"), str):
        longest = len(pattern["String"])
    else:
        longest = None
    if kind == "Replace" and (longest is None or not isinstance(part.get("content"), str)
                              or len(part["content"]) > max(longest, 1)):
        raise BundleError(f"{where}: {what} Replace may not make the text longer (its content is longer than what "
                          "it replaces)")
    if kind == "Prepend" and len(str(part.get("prepend", ""))) > 16:
        raise BundleError(f"{where}: {what} Prepend adds more than 16 characters")
    if kind == "TemplateProcessing" and any(len(part.get(k) or []) > MAX_TEMPLATE_PIECES + 2
                                            for k in ("single", "pair")):
        raise BundleError(f"{where}: post_processor template adds more than {MAX_TEMPLATE_PIECES} special tokens")
