"""ContentClassifier: text -> primary category, secondary tags, category index c and semantic vector v."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Hashable, Iterable, Iterator, Sequence

import numpy as np
from tokenizers import Tokenizer

from edge_rec.batching import length_groups
from edge_rec.bundle import Bundle, BundleError, as_bundle
from edge_rec.cache import LRUCache
from edge_rec.char_codes import CHAR_INPUT, char_codes
from edge_rec.checks import positive_int, probability
from edge_rec.scope import Scope
from edge_rec.sessions import bundle_session, check_io, checked_output, resolve_threads
from edge_rec.tokenizer_rules import MAX_TOKENIZER_BYTES, check_tokenizer

INPUTS = {"input_ids", "attention_mask"}
_MISSING = object()
MAX_VOCAB = 500_000  # tokenizer pieces a bundle may carry (XLM-R's full vocabulary is 250,002)
OUTPUTS = ("primary_probs", "tag_probs", "index", "vector")


@dataclass(frozen=True)
class Classification:
    primary: str
    primary_prob: float
    tags: tuple[tuple[str, float], ...]  # (tag, probability) above the threshold, most likely first
    index: float  # category index c in [0, 1]: how typical the text is of its primary category (a percentile among
    # held-out titles of that category where the bundle has an index_calibration, else the model's raw output)
    vector: np.ndarray  # (vector_dim,) float32, unit norm
    in_scope: bool = True  # False: the text is outside the bundle's declared scope (edge_rec/scope.py)
    scope_score: float = 1.0  # the text's share in the bundle's scripts (1.0 where the bundle declares no scope)

    @property
    def labels(self) -> tuple[str, ...]:
        """Its primary label, then its tags: what interest tags are matched against."""
        return (self.primary, *(t for t, _ in self.tags))

    def to_dict(self, with_vector: bool = False) -> dict:
        d = {"primary": self.primary, "primary_prob": round(self.primary_prob, 6),
             "tags": [{"tag": t, "prob": round(p, 6)} for t, p in self.tags], "index": round(self.index, 6),
             "in_scope": self.in_scope, "scope_score": round(self.scope_score, 6)}
        if with_vector:
            d["vector"] = [round(float(x), 6) for x in self.vector]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Classification":
        """A result written with to_dict(with_vector=True) (e.g. by `edge-rec classify --vector`) back as a
        Classification, to pass as Item(id, classification=...). ValueError naming the field that is wrong."""
        if not isinstance(d, dict):
            raise TypeError(f"a classification must be a dict, got {type(d).__name__}")
        missing = {"primary", "primary_prob", "tags", "index", "vector"} - set(d)
        if missing:
            raise ValueError(f"classification dict lacks {sorted(missing)} (write it with to_dict(with_vector=True))")
        try:
            tags = tuple((str(t["tag"]), float(t["prob"])) for t in d["tags"])
            vector = _frozen(np.asarray(d["vector"], dtype=np.float32))
            numbers = float(d["primary_prob"]), float(d["index"]), float(d.get("scope_score", 1.0))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"classification dict has a malformed field ({e}); expected tags as "
                             "[{'tag', 'prob'}], a numeric primary_prob and index, and a list of numbers as vector") from None
        if vector.ndim != 1 or not np.isfinite(vector).all() or not all(np.isfinite(numbers)):
            raise ValueError("classification vector must be a flat list of finite numbers, and primary_prob and index "
                             "finite")
        return cls(str(d["primary"]), numbers[0], tags, numbers[1], vector, bool(d.get("in_scope", True)), numbers[2])


class ContentClassifier:
    """Classify content texts with a bundle's classifier model.

    profile: "phone" (1 thread), "tablet" (2) or "pc" (all cores); `threads` overrides it.
    Results are cached per content id (or per text when no ids are given), `cache_size` entries at most. The
    cache remembers each id's text: a different text under a known id is classified afresh and replaces the entry.
    `trusted_keys`: public keys one of which must have signed the bundle (edge_rec/trust.py).
    """

    def __init__(self, bundle: str | os.PathLike | Bundle | None = None, profile: str = "phone",
                 threads: int | None = None, cache_size: int = 10_000, tag_threshold: float | None = None,
                 batch_size: int | None = None, trusted_keys=None):
        self.bundle = as_bundle(bundle, trusted_keys)
        cfg = self.bundle.pipeline
        self.tag_threshold = probability("tag_threshold", cfg.get("tag_threshold", 0.5)
                                         if tag_threshold is None else tag_threshold)
        self.batch_size = positive_int("batch_size", cfg.get("batch_size", 32) if batch_size is None else batch_size)
        self.threads = resolve_threads(profile, threads)
        tok = self.bundle.tokenizer
        self.max_length = tok["max_length"]
        self.prefix = tok.get("prefix", "")
        # Characters past this can never reach the model (max_length tokens); cut them before tokenizing.
        self.max_chars = tok.get("max_chars", 64 * self.max_length)
        self.tokenizer = self._load_tokenizer(tok)
        self.session, self.model_path = bundle_session(self.bundle, "classifier", self.threads)
        # Where the model has a character wide part it also reads the texts' code points (edge_rec/char_codes.py).
        self.reads_chars = CHAR_INPUT in {i.name for i in self.session.get_inputs()}
        check_io(self.session, self.model_path, INPUTS | ({CHAR_INPUT} if self.reads_chars else set()), set(OUTPUTS))
        self._probe_max_length()
        self._labels = np.array(self.bundle.primary_labels, dtype=object)
        self._tags = np.array(self.bundle.tags, dtype=object)
        self.scope = Scope.from_manifest(self.bundle.manifest.get("scope"))
        # c as a percentile within its primary category, where the bundle calibrated it (see index_calibration).
        quantiles = self.bundle.manifest.get("index_calibration", {}).get("quantiles", {})
        self._index_quantiles = {label: (np.asarray(q, dtype=np.float64), np.linspace(0.0, 1.0, len(q)))
                                 for label, q in quantiles.items()}
        self.cache: LRUCache[tuple[str, Classification]] = LRUCache(cache_size)  # key -> (text, result)

    def _load_tokenizer(self, tok: dict) -> Tokenizer:
        path = self.bundle.file(tok["file"])
        if path.stat().st_size > MAX_TOKENIZER_BYTES:
            raise BundleError(f"{path}: {path.stat().st_size} bytes, past the limit of {MAX_TOKENIZER_BYTES} for a "
                              "tokenizer")
        try:
            text = self.bundle.read(tok["file"]).decode("utf-8")
            check_tokenizer(json.loads(text), str(path))  # what it may contain, before tokenizers parses it
            tokenizer = Tokenizer.from_str(text)
        except BundleError:
            raise
        except (ValueError, RecursionError) as e:  # not UTF-8 or not JSON
            raise BundleError(f"{path}: not a valid tokenizers file ({' '.join(str(e).split())[:200]})") from None
        except Exception as e:  # tokenizers raises a bare Exception on malformed JSON
            raise BundleError(f"{path}: not a valid tokenizers file ({' '.join(str(e).split())[:200]})") from None
        if tokenizer.get_vocab_size() > MAX_VOCAB:
            raise BundleError(f"{path}: {tokenizer.get_vocab_size()} pieces, past the limit of {MAX_VOCAB}")
        if tokenizer.get_vocab_size() <= tok["pad_id"]:
            raise BundleError(f"{path}: pad_id {tok['pad_id']} is outside the vocabulary "
                              f"({tokenizer.get_vocab_size()} pieces)")
        tokenizer.enable_truncation(self.max_length)
        tokenizer.no_padding()  # padding is done per batch in _run, to that batch's longest text
        return tokenizer

    def _probe_max_length(self) -> None:
        """One text of tokenizer.max_length tokens through the model: a position table shorter than the manifest's
        max_length fails here, not at the first long text."""
        n = self.max_length
        ids = np.full((1, n), self.bundle.tokenizer["pad_id"], dtype=np.int64)
        try:
            self.session.run(list(OUTPUTS), self._feeds(ids, np.ones((1, n), dtype=np.int64), ["x"]))
        except Exception as e:  # onnxruntime's own exception types
            raise BundleError(f"{self.model_path}: cannot read tokenizer.max_length = {n} tokens (the model's "
                              f"position table is shorter?): {' '.join(str(e).split())[:160]}") from None

    def classify(self, texts: str | Sequence[str], ids: Sequence[Hashable] | None = None) -> list[Classification]:
        """Classify one text or a list of texts; returns one Classification per text, in input order."""
        single = isinstance(texts, str)
        texts = [texts] if single else texts
        if isinstance(texts, (bytes, bytearray)) or not isinstance(texts, Sequence):
            raise TypeError(f"texts must be a str or a sequence of str, got {type(texts).__name__}")
        clean = [self.clean(t, i) for i, t in enumerate(texts)]
        if ids is None:
            keys = clean
        else:
            if isinstance(ids, (str, bytes)) or len(ids) != len(clean):
                raise ValueError(f"ids must be a sequence with one id per text ({len(clean)}), got {ids!r:.80}")
            keys = list(ids)
        hits = [self.cache.get(k) for k in keys]
        results: list[Classification | None] = [h[1] if h is not None and h[0] == t else None
                                                 for h, t in zip(hits, clean)]
        todo = [i for i, r in enumerate(results) if r is None]
        for i, r in zip(todo, self._run([clean[i] for i in todo])):
            results[i] = r
            self.cache.put(keys[i], (clean[i], r))
        return results

    def classify_stream(self, texts: Iterable[str], ids: Iterable[Hashable] | None = None, chunk: int | None = None,
                        skip_bad: bool = False) -> Iterator[Classification | Exception]:
        """Classify an iterable of any length, `chunk` texts at a time (default 8 batches; the first chunks are
        smaller, one batch doubling up to `chunk`, so the first results come early): results come in input order as
        each chunk is done, and memory does not grow with the input. A bad text first lets every good
        text before it through, then raises its TypeError/ValueError (naming its position in the stream); with
        `skip_bad`, that exception is yielded in its place and the stream goes on."""
        chunk = positive_int("chunk", 8 * self.batch_size if chunk is None else chunk)
        size = min(chunk, self.batch_size)
        id_iter = None if ids is None else iter(ids)
        pending: list[tuple[str, Hashable]] = []

        def flush():
            done = self.classify([t for t, _ in pending], None if id_iter is None else [k for _, k in pending])
            pending.clear()
            return done

        source, i = iter(texts), -1
        while True:
            try:
                text = next(source)
            except StopIteration:
                break
            except Exception:  # the input itself failed (e.g. undecodable bytes): what was read still comes out
                yield from flush()
                raise
            i += 1
            key = None
            if id_iter is not None:
                key = next(id_iter, _MISSING)
                if key is _MISSING:
                    raise ValueError(f"ids ran out at text {i}; give one id per text")
            try:
                pending.append((self.clean(text, i), key))
            except (TypeError, ValueError) as e:
                yield from flush()
                if not skip_bad:
                    raise
                yield e
                continue
            if len(pending) >= size:
                yield from flush()
                size = min(chunk, 2 * size)
        yield from flush()

    def clear_cache(self) -> None:
        """Forget every cached result (e.g. after the app's content changed wholesale)."""
        self.cache.clear()

    def clean(self, text, i: int | None = None) -> str:
        """The text as the model will read it; TypeError/ValueError (naming position `i`) if it cannot be classified."""
        name = "text" if i is None else f"text {i}"
        if isinstance(text, (bytes, bytearray)):
            raise TypeError(f"{name} is bytes; decode it to str first (e.g. data.decode('utf-8'))")
        if not isinstance(text, str):
            raise TypeError(f"{name} must be a str, got {type(text).__name__}")
        # Leading whitespace never reaches the model: drop it before cutting, so a long run of it is not "empty".
        # Lone surrogates cannot be encoded to UTF-8 for the tokenizer: replace them rather than fail.
        text = text.lstrip()[: self.max_chars].encode("utf-8", "replace").decode("utf-8")
        if not text.strip():
            raise ValueError(f"{name} is empty or only whitespace; there is nothing to classify")
        return text

    def _run(self, texts: list[str]) -> list[Classification]:
        if not texts:
            return []
        encodings = self.tokenizer.encode_batch([self.prefix + t for t in texts])
        # Sorted by length and cut into the calls that cost least (padding against the per-call cost, at most
        # batch_size rows each); results go back to input order.
        lengths = np.array([len(e.ids) for e in encodings])
        order = np.argsort(lengths, kind="stable")
        out: list[Classification | None] = [None] * len(texts)
        for start, stop in length_groups(lengths[order], self.batch_size):
            chunk = order[start:stop]
            ids, mask = self._padded([encodings[i] for i in chunk])
            for i, r in zip(chunk, self.predict(ids, mask, [texts[i] for i in chunk])):
                out[i] = r
        return out

    def _padded(self, encodings: list) -> tuple[np.ndarray, np.ndarray]:
        """Token ids and attention mask (B, T) of `encodings`, padded to the longest."""
        width = max(len(e.ids) for e in encodings)
        ids = np.full((len(encodings), width), self.bundle.tokenizer["pad_id"], dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        for row, e in enumerate(encodings):
            ids[row, :len(e.ids)] = e.ids
            mask[row, :len(e.ids)] = 1
        return ids, mask

    def _feeds(self, input_ids: np.ndarray, attention_mask: np.ndarray, texts: list[str] | None) -> dict:
        """The session's inputs: ids and mask, and where the model has a character part, the texts' code points."""
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self.reads_chars:
            if texts is None or len(texts) != len(input_ids):
                raise ValueError("this bundle's classifier also reads the texts' characters: pass the texts the ids "
                                 "came from, one per row")
            feeds[CHAR_INPUT] = char_codes(texts)
        return feeds

    def predict(self, input_ids: np.ndarray, attention_mask: np.ndarray,
                texts: list[str] | None = None) -> list[Classification]:
        """Run the model on already-tokenized, padded ids (B, T) and mask (B, T); with the `texts` they came from,
        each result is also judged against the bundle's scope (and a model with a character part reads them)."""
        feeds = self._feeds(input_ids, attention_mask, texts)
        primary, tags, index, vector = self.session.run(list(OUTPUTS), feeds)  # (B, C) (B, K) (B,) (B, D)
        rows = len(input_ids)
        for name, out, shape in (("primary_probs", primary, (rows, len(self._labels))),
                                 ("tag_probs", tags, (rows, len(self._tags))), ("index", index, (rows,))):
            checked_output(out, self.model_path, name, shape, probabilities=True)
        checked_output(vector, self.model_path, "vector", (rows, self.bundle.vector_dim))
        best = primary.argmax(axis=1)
        results = []
        for b in range(primary.shape[0]):
            hits = np.flatnonzero(tags[b] >= self.tag_threshold)
            hits = hits[np.argsort(-tags[b, hits], kind="stable")]
            prob = float(primary[b, best[b]])
            label = str(self._labels[best[b]])
            q = self._index_quantiles.get(label)  # (quantiles, their levels)
            c = float(index[b]) if q is None else float(np.interp(index[b], *q))
            in_scope, share = (True, 1.0) if self.scope is None or texts is None else self.scope.judge(texts[b], prob)
            results.append(Classification(
                primary=label, primary_prob=prob,
                tags=tuple((str(self._tags[k]), float(tags[b, k])) for k in hits),
                index=c, vector=_frozen(vector[b]), in_scope=in_scope, scope_score=share))
        return results


def _frozen(row: np.ndarray) -> np.ndarray:
    """A read-only float32 copy: a result must neither alias the batch's output (which would keep the whole batch
    alive in the cache) nor let a caller's edit change what the cache returns next time."""
    out = np.array(row, dtype=np.float32)
    out.flags.writeable = False
    return out
