"""Classify a whole catalogue once, as a stream: JSON lines or Parquet in, JSON lines or Parquet out, resumable.

A content app classifies each item once, when it is published; devices then receive items already classified. This
is the server side of that: `classify_catalogue` reads (id, text) records a chunk at a time, classifies them and
writes one row per item (id, text, primary, primary_prob, tags, index, in_scope, scope_score, the vector as fp32,
fp16 or int8, and the bundle's classification key), so memory stays bounded whatever the input size. Re-running
with the same output skips the ids already written (a crashed run goes on where it stopped); the local store
imports the output without classifying again (`Store.add_classified`). Parquet needs `pyarrow` (the `parquet`
extra); `ClassifyBatches` runs the same per-batch step on Ray Data's workers (the `ray` extra).
"""
from __future__ import annotations

import json
import os
import sqlite3
import tempfile
from collections import deque
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from edge_rec.classifier import Classification, ContentClassifier
from edge_rec.jsonl import BadLine, jsonl_records

VECTOR_FORMATS = ("fp32", "fp16", "int8", "none")
VECTOR_COLUMNS = {"int8": {"vector_int8", "vector_scale"}, "float": {"vector"}}
VECTOR_COLUMN_OF = {"fp32": "float", "fp16": "float", "int8": "int8", "none": "none"}
PART_ROWS = 5_000  # rows per Parquet part file: a part is written whole (renamed into place) or not at all


class CatalogueError(ValueError):
    """A catalogue input or output that cannot be used; the message names the file (and line or row)."""


def pyarrow():
    """pyarrow, or a CatalogueError saying how to get it."""
    try:
        import pyarrow
        import pyarrow.dataset  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise CatalogueError("Parquet needs pyarrow: pip install 'edge-rec[parquet]' (or use .jsonl)") from None
    return pyarrow


def _check_format(vector: str) -> None:
    if vector not in VECTOR_FORMATS:
        raise CatalogueError(f"vector format must be one of {', '.join(VECTOR_FORMATS)}, got {vector!r}")


# -- rows ---------------------------------------------------------------------------------------------------------
def encode_vector(v: np.ndarray, fmt: str) -> dict:
    """The vector columns of one row: fp32 / fp16 values, or int8 codes with their scale (v ~= codes * scale)."""
    if fmt == "int8":
        scale = float(np.abs(v).max()) / 127 or 1.0
        return {"vector_int8": np.round(v / scale).astype(np.int8), "vector_scale": scale}
    if fmt in ("fp32", "fp16"):
        return {"vector": v.astype(np.float16 if fmt == "fp16" else np.float32)}
    return {}


def decode_vector(row: dict, where: str) -> np.ndarray:
    if row.get("vector") is not None:
        return np.asarray(row["vector"], dtype=np.float32)
    if row.get("vector_int8") is not None and row.get("vector_scale") is not None:
        return np.asarray(row["vector_int8"], dtype=np.float32) * np.float32(row["vector_scale"])
    raise CatalogueError(f"{where}: no vector (write the catalogue with --vector fp32, fp16 or int8 to import it)")


def rows_of(ids: list[str], texts: list[str], results: list[Classification], fmt: str, key: str) -> list[dict]:
    return [{"id": i, "text": t, **r.to_dict(), **encode_vector(r.vector, fmt), "bundle": key}
            for i, t, r in zip(ids, texts, results)]


def classification_of(row: dict, where: str) -> Classification:
    """A written row back as a Classification (for Item(id, classification=...))."""
    return Classification.from_dict({**row, "vector": decode_vector(row, where)})


def arrow_table(rows: list[dict], fmt: str):
    pa = pyarrow()

    vector = {"fp32": [("vector", pa.list_(pa.float32()))], "fp16": [("vector", pa.list_(pa.float16()))],
              "int8": [("vector_int8", pa.list_(pa.int8())), ("vector_scale", pa.float32())], "none": []}[fmt]
    schema = pa.schema([("id", pa.string()), ("text", pa.string()), ("primary", pa.string()),
                        ("primary_prob", pa.float32()),
                        ("tags", pa.list_(pa.struct([("tag", pa.string()), ("prob", pa.float32())]))),
                        ("index", pa.float32()), ("in_scope", pa.bool_()), ("scope_score", pa.float32()),
                        *vector, ("bundle", pa.dictionary(pa.int32(), pa.string()))])
    return pa.Table.from_pylist(rows, schema=schema)


def _json_row(row: dict) -> str:
    out = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in row.items()}
    if "vector" in out:  # as Classification.to_dict(with_vector=True) writes it
        out["vector"] = [round(x, 6) for x in out["vector"]]
    return json.dumps(out, ensure_ascii=False)


# -- inputs -------------------------------------------------------------------------------------------------------
def is_parquet(path) -> bool:
    return Path(path).suffix.lower() in (".parquet", ".pq")


def read_records(path, chunk: int = 4096, keep_going: bool = False) -> Iterator[tuple[str, dict]]:
    """(where, record) per item of a JSON-lines or Parquet file (or folder of Parquet parts), as a stream; with
    `keep_going` a JSON line that cannot be read comes as a BadLine record (refused by _text_of) and reading goes
    on."""
    if not is_parquet(path):
        for n, record in jsonl_records(path, keep_going):
            yield f"{path}:{n}", record
        return
    ds = pyarrow().dataset
    try:
        data = ds.dataset(str(path), format="parquet")
    except Exception as e:  # pyarrow raises its own errors for a missing or unreadable file
        raise CatalogueError(f"{path}: not a readable Parquet file or folder ({str(e)[:160]})") from None
    n = 0
    for batch in data.to_batches(batch_size=chunk):
        for record in batch.to_pylist():
            n += 1
            yield f"{path} row {n}", record


def _text_of(record, where: str) -> tuple[str, str]:
    if isinstance(record, BadLine):
        raise CatalogueError(str(record))
    if not isinstance(record, dict) or "id" not in record or record["id"] is None:
        raise CatalogueError(f"{where}: expected an object with 'id' and 'text'")
    text = record.get("text")
    if not isinstance(text, str) or not text.strip():
        raise CatalogueError(f"{where}: id {record['id']!r:.60}: 'text' must be a non-empty string")
    return str(record["id"]), text


# -- outputs ------------------------------------------------------------------------------------------------------
class _JsonlOut:
    """Appends rows; a line cut short by a crash is dropped on resume (its item is classified again)."""

    def __init__(self, path: Path):
        self.path, self.f = path, None
        if path.exists() and not path.is_file():
            raise CatalogueError(f"{path}: not a regular file (a terminal, pipe or device); --output must be a file "
                                 "the job can re-read to resume, e.g. out.jsonl")

    def start(self) -> None:
        """Once `_output` has found the file to be this job's (or new): open it for appending, a line cut short
        dropped first (never done to a file that is not a catalogue output)."""
        if self.path.exists():
            _drop_partial_line(self.path)
        self.f = open(self.path, "a", encoding="utf-8")

    def done_ids(self) -> Iterator[str]:
        return (str(r["id"]) for _, r in jsonl_records(self.path))

    def first_row(self) -> dict | None:
        """The first row, None for a new or empty file, {} for one that is not JSON lines."""
        if not self.path.exists():
            return None
        try:
            return next((r for _, r in jsonl_records(self.path)), None)
        except ValueError:
            return {}

    def write(self, rows: list[dict]) -> None:
        self.f.write("".join(_json_row(r) + "\n" for r in rows))
        self.f.flush()

    def close(self) -> None:
        if self.f is not None:
            self.f.close()


def _is_catalogue_row(row) -> bool:
    return isinstance(row, dict) and "id" in row and "bundle" in row


def _drop_partial_line(path: Path, block: int = 1 << 16) -> None:
    """Cut the file after its last newline, reading backwards from the end a block at a time (the file may be
    far larger than memory)."""
    with open(path, "rb+") as f:
        end = f.seek(0, os.SEEK_END)
        pos = end
        while pos > 0:
            start = max(0, pos - block)
            f.seek(start)
            at = f.read(pos - start).rfind(b"\n")
            if at >= 0:
                f.truncate(start + at + 1)
                return
            pos = start
        f.truncate(0)


class _ParquetOut:
    """A folder of part files, each written under a temporary name and renamed into place when whole."""

    def __init__(self, path: Path, fmt: str):
        self.pq = pyarrow().parquet  # fails before any work where pyarrow is missing
        self.path, self.fmt, self.rows = path, fmt, []
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob(".*.tmp"):
            stale.unlink()
        self.next = 1 + max((int(p.stem.split("-")[1]) for p in path.glob("part-*.parquet")), default=-1)

    def start(self) -> None:
        """Part files are written whole as they fill: nothing to open."""

    def done_ids(self) -> Iterator[str]:
        return (i for p in sorted(self.path.glob("part-*.parquet"))
                for i in self.pq.read_table(p, columns=["id"]).column("id").to_pylist())

    def first_row(self) -> dict | None:
        first = next(iter(sorted(self.path.glob("part-*.parquet"))), None)
        return self.pq.read_table(first).slice(0, 1).to_pylist()[0] if first else None

    def write(self, rows: list[dict]) -> None:
        self.rows.extend(rows)
        if len(self.rows) >= PART_ROWS:
            self._flush()

    def _flush(self) -> None:
        if not self.rows:
            return
        final = self.path / f"part-{self.next:05d}.parquet"
        tmp = self.path / f".{final.name}.tmp"
        self.pq.write_table(arrow_table(self.rows, self.fmt), tmp)
        os.replace(tmp, final)
        self.next, self.rows = self.next + 1, []

    def close(self) -> None:
        self._flush()


def _output(path: Path, fmt: str, key: str):
    """The output, checked to go on as it began: the same bundle and vector columns (one table, one schema)."""
    out = _ParquetOut(path, fmt) if is_parquet(path) else _JsonlOut(path)
    first = out.first_row()
    if first is not None:
        if not _is_catalogue_row(first):
            out.close()
            raise CatalogueError(f"{path}: exists and is not a catalogue output (no 'id' and 'bundle' in its first "
                                 "row); give a new --output, or an earlier run's output to resume it")
        had = next((f for f, cols in VECTOR_COLUMNS.items() if cols <= set(first)), "none")
        if had != VECTOR_COLUMN_OF[fmt] or first.get("bundle") != key:
            out.close()
            raise CatalogueError(f"{path}: begun with {'another bundle' if first.get('bundle') != key else had} "
                                 f"vectors; resume it with the same bundle and --vector-format, or write elsewhere")
    out.start()
    return out


class _SeenIds:
    """The ids written so far, in a temporary on-disk SQLite table: resuming and duplicate ids cost no memory that
    grows with the catalogue (a Python set held about 70 bytes an id)."""

    def __init__(self, ids: Iterable[str]):
        self._dir = tempfile.TemporaryDirectory(prefix="edge-rec-ids-")
        self._db = sqlite3.connect(os.path.join(self._dir.name, "ids.db"))
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("CREATE TABLE ids (id TEXT PRIMARY KEY) WITHOUT ROWID")
        self._db.executemany("INSERT OR IGNORE INTO ids VALUES (?)", ((i,) for i in ids))

    def add(self, item_id: str) -> bool:
        """True if the id is new (and now remembered)."""
        return self._db.execute("INSERT OR IGNORE INTO ids VALUES (?)", (item_id,)).rowcount == 1

    def close(self) -> None:
        self._db.close()
        self._dir.cleanup()


# -- the job ------------------------------------------------------------------------------------------------------
def classify_catalogue(clf: ContentClassifier, src, dst, vector: str = "fp32", chunk: int = 256,
                       skip_bad: bool = False, progress: Callable[[int], None] | None = None) -> dict:
    """Classify every item of `src` not yet in `dst` and append it there. A bad record (no id, no text) stops the
    job with a CatalogueError naming it, after everything before it was written; with `skip_bad` it is listed in
    `<dst>.errors.jsonl` and the job goes on. `progress(n)` hears how many items were handled (written or
    skipped) after each write. Returns counts: written, skipped (already there), bad."""
    _check_format(vector)
    dst = Path(dst)
    key = clf.bundle.classification_key
    out = _output(dst, vector, key)
    counts = {"written": 0, "skipped": 0, "bad": 0}
    pending: deque[tuple[str, str]] = deque()  # read, not yet written: at most one chunk
    errors, seen = None, None
    try:
        seen = _SeenIds(out.done_ids())

        def texts() -> Iterator[str]:
            nonlocal errors
            for where, record in read_records(src, keep_going=skip_bad):
                try:
                    item_id, text = _text_of(record, where)
                except CatalogueError as e:
                    if not skip_bad:
                        raise
                    errors = errors or open(f"{dst}.errors.jsonl", "a", encoding="utf-8")
                    errors.write(json.dumps({"where": where, "error": str(e)}, ensure_ascii=False) + "\n")
                    counts["bad"] += 1
                    continue
                if not seen.add(item_id):  # already written, or twice in the input: its first record wins
                    counts["skipped"] += 1
                    continue
                pending.append((item_id, text))
                yield text

        batch: list[tuple[str, str, Classification]] = []
        for r in clf.classify_stream(texts(), chunk=chunk):
            item_id, text = pending.popleft()
            batch.append((item_id, text, r))
            if not pending or len(batch) >= chunk:  # a chunk done: written, so a crash loses none of it
                out.write(rows_of(*map(list, zip(*batch)), vector, key))
                counts["written"] += len(batch)
                batch = []
                if progress:
                    progress(counts["written"] + counts["skipped"])
        return counts
    finally:
        out.close()
        if seen:
            seen.close()
        if errors:
            errors.close()


class ClassifyBatches:
    """Ray Data's per-worker step: `ds.map_batches(ClassifyBatches, fn_constructor_kwargs={"threads": 1},
    concurrency=N, batch_size=256, batch_format="pyarrow")` over records with `id` and `text` columns gives the
    same rows (and Parquet schema) as `classify_catalogue`. One classifier (one onnxruntime session) per worker,
    made once when the worker starts."""

    def __init__(self, bundle: str | None = None, threads: int = 1, vector: str = "fp32"):
        _check_format(vector)
        self.clf = ContentClassifier(bundle, threads=threads, cache_size=0)
        self.vector, self.key = vector, self.clf.bundle.classification_key

    def __call__(self, batch):
        records = batch.select(["id", "text"]).to_pylist()
        pairs = [_text_of(r, f"record id {r.get('id')!r:.60}") for r in records]
        ids, texts = [i for i, _ in pairs], [t for _, t in pairs]
        return arrow_table(rows_of(ids, texts, self.clf.classify(texts), self.vector, self.key), self.vector)


def classified_items(path) -> Iterable[tuple[str, str, Classification, str]]:
    """(id, text, classification, bundle key) per row of a catalogue output, as a stream."""
    for where, row in read_records(path):
        if not isinstance(row, dict) or "id" not in row or "primary" not in row:
            raise CatalogueError(f"{where}: not a row of `edge-rec classify --output` (needs id, text, primary, ...)")
        try:
            yield str(row["id"]), row.get("text"), classification_of(row, where), row.get("bundle")
        except ValueError as e:
            raise CatalogueError(f"{where}: {e}") from None
