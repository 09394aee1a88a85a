"""Train the default classifier: prepare -> finetune (teacher) -> distill (student). Runs on CPU or CUDA.

    python -m edge_rec_export.training.train_classifier prepare  --data ../shared/data --out work/prep
    python -m edge_rec_export.training.train_classifier cache    --prep work/prep --keep 6,10
    python -m edge_rec_export.training.train_classifier finetune --prep work/prep --top 2 --out work/teacher.pt
    python -m edge_rec_export.training.train_classifier distill  --prep work/prep --teacher work/teacher.pt --layers 2 --out work/student

`prepare` prunes the e5 teacher's vocabulary to the corpora and stores it, in the teacher's own 4-bit format, next to
the tokenized splits. On a CPU the full teacher cannot be fine-tuned in reasonable time (DESIGN.md: over an hour an
epoch), so `cache` runs the frozen lower layers once, and `finetune` trains only the top layers + MMoE on that cache. The word embeddings stay frozen throughout (they
are the teacher's, bit for bit), so the student's files leave them out and `load_student` puts them back.
"""
from __future__ import annotations

import argparse
import gzip
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from edge_rec_export.models.classifier import ClassifierConfig, ContentClassifierModel, load_checkpoint, save_checkpoint
from edge_rec_export.models.ngram_wide import HashedTfidf, WideConfig
from edge_rec_export.training.metrics import classifier_report
from edge_rec.char_codes import CHAR_INPUT, MAX_CHARS, char_codes
from edge_rec_export.data.corpus import Corpus, Targets
from edge_rec_export.data.news_data import news_corpus
from edge_rec_export.data.teacher_file import encoder_state_dict, find_wheel_teacher, read_teacher, write_teacher
from edge_rec_export.data.tokenizer import build_tokenizer
from edge_rec_export.data.vocab_prune import prune

MAX_LENGTH = 64
BUCKET_BATCHES = 50  # training batches drawn from one length-sorted run of the shuffle (Split.batches)
N_TAGS = 300
SPLITS = ("train", "val", "test", "public", "transfer")
TEXTS = "texts.json.gz"


# ---------------------------------------------------------------- prepare
def prepare(corpus: Corpus, out: Path, salt: str = "13", teacher_file: Path | None = None) -> None:
    """Split the corpus, prune the teacher's vocabulary to it, tokenize every split; stores data.npz (ids, labels,
    tag and index targets, code points for the character part, sources), texts.json.gz and meta.json."""
    out.mkdir(parents=True, exist_ok=True)
    parts = corpus.splits(salt)
    targets = Targets.fit(parts["train"], len(corpus.labels), N_TAGS)
    full = read_teacher(teacher_file or find_wheel_teacher())
    teacher, keep = prune(full, [e.title for exs in parts.values() for e in exs])
    write_teacher(teacher, out / "teacher.e5s1")
    tok = build_tokenizer(teacher.pieces, teacher.scores, teacher.unk, teacher.bos, teacher.eos, teacher.norm_map)
    length = min(MAX_LENGTH, teacher.config.max_positions)  # never past the teacher's position table
    tok.enable_truncation(length)
    tok.save(str(out / "tokenizer.json"))
    sources = sorted({e.source for name, exs in parts.items() if name != "transfer" for e in exs})
    arrays = {}
    for name, exs in parts.items():
        enc = tok.encode_batch([e.title for e in exs])
        ids = np.full((len(exs), length), teacher.pad, dtype=np.uint16)
        for i, e in enumerate(enc):
            ids[i, :len(e.ids)] = e.ids
        arrays[f"{name}_ids"] = ids
        arrays[f"{name}_len"] = np.array([len(e.ids) for e in enc], dtype=np.int16)
        arrays[f"{name}_label"] = np.array([e.label for e in exs], dtype=np.int64)
        arrays[f"{name}_tags"] = np.stack([targets.tag_vector(e) for e in exs]).astype(np.uint8)
        arrays[f"{name}_index"] = np.array([targets.index(e) for e in exs], dtype=np.float32)
        arrays[f"{name}_chars"] = char_codes([e.title for e in exs], MAX_CHARS).astype(np.int32)
        if name != "transfer":
            arrays[f"{name}_source"] = np.array([sources.index(e.source) for e in exs], dtype=np.int8)
    np.savez_compressed(out / "data.npz", **arrays)
    (out / TEXTS).write_bytes(gzip.compress(json.dumps({k: [e.title for e in v] for k, v in parts.items()},
                                                       ensure_ascii=False).encode("utf-8"), mtime=0))
    meta = {"name": corpus.name, "labels": corpus.labels, "codes": corpus.codes, "tags": targets.tags,
            "sources": sources, "max_length": length, "pad_id": teacher.pad, "vocab_size": len(keep),
            "full_vocab_size": len(full.pieces), "split_salt": salt, "sizes": {k: len(v) for k, v in parts.items()}}
    (out / "meta.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
    print(f"prepared {meta['sizes']} texts, vocabulary {len(keep)} pieces -> {out}")


def prep_texts(prep: Path) -> dict[str, list[str]]:
    """Every prepared split's texts, in row order."""
    return json.loads(gzip.decompress((prep / TEXTS).read_bytes()))


class Split:
    FIELDS = ("ids", "len", "label", "tags", "index", "chars", "source")

    def __init__(self, data, name: str, sources: list[str] = ()):
        """`data`: the prepared arrays (`{name}_ids`, ...); `source` (index into `sources`, the corpus's source
        names; held-out splits only) is optional."""
        self.name, self.sources = name, list(sources)
        self.arrays = {f: np.asarray(data[f"{name}_{f}"]) for f in self.FIELDS if f"{name}_{f}" in data}
        self.ids = torch.from_numpy(self.arrays["ids"].astype(np.int64))
        self.len = torch.from_numpy(self.arrays["len"].astype(np.int64))
        self.label = torch.from_numpy(self.arrays["label"])
        self.tags = torch.from_numpy(self.arrays["tags"].astype(np.float32))
        self.index = torch.from_numpy(self.arrays["index"])
        self.offsets = np.concatenate([[0], np.cumsum(self.len.numpy())])

    @classmethod
    def join(cls, name: str, parts: list["Split"]) -> "Split":
        """The rows of `parts` one after another (their per-token caches concatenate in the same order)."""
        fields = set.intersection(*(set(p.arrays) for p in parts))
        return cls({f"{name}_{f}": np.concatenate([p.arrays[f] for p in parts]) for f in fields}, name,
                   parts[0].sources)

    def select(self, name: str, rows: np.ndarray) -> "Split":
        return Split({f"{name}_{f}": a[rows] for f, a in self.arrays.items()}, name, self.sources)

    def __len__(self):
        return len(self.label)

    def batches(self, size: int, shuffle: bool, gen: torch.Generator | None = None, by_length: bool = False):
        """Yields (rows, ids, mask, label, tags, index), each batch padded to its longest title.

        shuffle: random batches of titles of about one length: every BUCKET_BATCHES batches of a shuffle sorted by
        length, then all the batches in random order (news titles padded to a random batch's longest carry 1.56x
        their tokens, so bucketed 0.99x). by_length: ordered by title length, for passes where order does not
        matter."""
        if shuffle:
            order = torch.randperm(len(self), generator=gen)
            runs = [run[torch.argsort(self.len[run], stable=True)] for run in order.split(size * BUCKET_BATCHES)]
            parts = [b for run in runs for b in run.split(size)]
            parts = [parts[i] for i in torch.randperm(len(parts), generator=gen)]
        else:
            order = torch.argsort(self.len, stable=True) if by_length else torch.arange(len(self))
            parts = order.split(size)
        for idx in parts:
            x = self.feeds(idx)
            yield idx, x["input_ids"], x["attention_mask"], self.label[idx], self.tags[idx], self.index[idx]

    def feeds(self, idx) -> dict[str, torch.Tensor]:
        """Rows `idx` (indices or a slice) as the classifier's inputs, padded to their longest title."""
        width = int(self.len[idx].max())
        return {"input_ids": self.ids[idx, :width],
                "attention_mask": (torch.arange(width)[None] < self.len[idx, None]).long()}

    def char_ids(self, idx) -> torch.Tensor:
        """Rows `idx` as the character part's input (edge_rec/char_codes.py), cut to their longest text."""
        chars = self.arrays["chars"][np.asarray(idx)]
        return torch.from_numpy(chars[:, :max(1, int((chars > 0).sum(1).max()))].astype(np.int64))

    def padded(self, flat: np.ndarray, idx: torch.Tensor) -> torch.Tensor:
        """Rows `idx` of a cached per-token array (total tokens, H) as (B, T, H) float32, zero-padded."""
        lens = self.len[idx].tolist()
        out = np.zeros((len(lens), max(lens), flat.shape[1]), dtype=np.float32)
        for b, (i, n) in enumerate(zip(idx.tolist(), lens)):
            out[b, :n] = flat[self.offsets[i]:self.offsets[i] + n]
        return torch.from_numpy(out)


def load_prep(prep: Path):
    """The prepared splits present (train, val, test, and public / transfer where prepared), and the meta."""
    data = np.load(prep / "data.npz")
    meta = json.loads((prep / "meta.json").read_text(encoding="utf-8"))
    return {s: Split(data, s, meta.get("sources", [])) for s in SPLITS if f"{s}_ids" in data}, meta


def held_out(data: dict[str, Split]) -> dict[str, tuple[str, np.ndarray]]:
    """The splits every accuracy table reports, named as the TF-IDF reference names them: name -> (the prepared
    split it is part of, its rows there)."""
    everything = {name: np.ones(len(data[name]), bool) for name in ("val", "test", "public") if name in data}
    out = {"val": ("val", everything["val"]), "test": ("test", everything["test"])}
    if len(data["test"].sources) > 1:
        source = data["test"].arrays["source"]
        out.update({f"test_{name}": ("test", source == k) for k, name in enumerate(data["test"].sources)})
    if "public" in data:
        out["public"] = ("public", everything["public"])
    return out


def teacher_model(prep: Path, meta: dict, wide: WideConfig = WideConfig()) -> ContentClassifierModel:
    tf = read_teacher(prep / "teacher.e5s1")
    model = ContentClassifierModel(ClassifierConfig(tf.config, n_primary=len(meta["labels"]), n_tags=len(meta["tags"]),
                                                    vector_dim=tf.config.hidden, wide=wide))
    model.encoder.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in encoder_state_dict(tf).items()})
    with torch.no_grad():  # the teacher's vector is e5's own normalised embedding
        model.project.weight.copy_(torch.eye(tf.config.hidden))
        model.project.bias.zero_()
    return model


# ---------------------------------------------------------------- frozen-layer cache
def cache_path(prep: Path, split_name: str, k: int) -> Path:
    return prep / "cache" / f"{split_name}-hidden{k}.npy"


@torch.no_grad()
def build_cache(prep: Path, keep: list[int], device, batch: int = 64) -> None:
    """Run the pretrained teacher once and store hidden states `keep` (state entering layer k) per token, fp16.

    The layers below the fine-tuned top are frozen, so these states never change during training.
    """
    data, meta = load_prep(prep)
    model = teacher_model(prep, meta).to(device).eval()
    (prep / "cache").mkdir(exist_ok=True)
    for name, split_ in data.items():
        total = int(split_.offsets[-1])
        stores = {k: np.lib.format.open_memmap(cache_path(prep, name, k), mode="w+", dtype=np.float16,
                                               shape=(total, model.cfg.encoder.hidden)) for k in keep}
        t0 = time.time()
        for idx, ids, mask, *_ in tqdm(split_.batches(batch, shuffle=False, by_length=True), desc=f"cache {name}",
                                       total=math.ceil(len(split_) / batch), unit="batch", mininterval=5, leave=False):
            x = model.encoder.embed(ids.to(device))
            hidden, _ = model.encoder.encode(x, mask.to(device), stop=max(keep))  # layers above are not stored
            for k, store in stores.items():
                h = hidden[k].float().cpu().numpy()
                for b, i in enumerate(idx.tolist()):
                    store[split_.offsets[i]:split_.offsets[i + 1]] = h[b, :int(split_.len[i])]
        for store in stores.values():
            store.flush()
        print(f"cached {name}: {total} tokens, layers {keep} ({time.time() - t0:.0f}s)", flush=True)
    (prep / "cache" / "done.json").write_text(json.dumps({"keep": keep}))  # marks a finished cache


def load_cache(prep: Path, data: dict, k: int) -> dict[str, np.ndarray]:
    return {name: np.load(cache_path(prep, name, k), mmap_mode="r") for name in data}


# ---------------------------------------------------------------- losses and evaluation
def tag_loss(logits: torch.Tensor, target: torch.Tensor, pos_weight: float) -> torch.Tensor:
    """BCE over the tags; pos_weight > 1 counters their sparsity (most titles carry none of the 300 tags)."""
    if logits.shape[-1] == 0:  # a corpus without tags
        return logits.sum() * 0
    weight = torch.tensor(pos_weight, device=logits.device, dtype=logits.dtype)
    return F.binary_cross_entropy_with_logits(logits, target, pos_weight=weight)


def task_loss(out, label, tags, index, tag_pos_weight: float) -> torch.Tensor:
    known = ~torch.isnan(index)
    idx_loss = F.mse_loss(out.index[known], index[known]) if known.any() else out.index.sum() * 0
    return F.cross_entropy(out.primary_logits, label) + tag_loss(out.tag_logits, tags, tag_pos_weight) + idx_loss


def probabilities(out) -> tuple:
    """ClassifierOutput -> (primary probs, tag probs, index), what the exported graph returns."""
    return out.primary_logits.softmax(-1), torch.sigmoid(out.tag_logits), out.index


@torch.no_grad()
def predict(forward, data: Split, batch: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`forward(rows, ids, mask)` -> a batch's (primary probs, tag probs, index), as torch tensors or numpy arrays;
    returns them over the split in its order (computed in batches of one length, the least padding)."""
    outs, rows = [[], [], []], []
    for idx, ids, mask, *_ in data.batches(batch, shuffle=False, by_length=True):
        rows.append(idx.numpy())
        for o, x in zip(outs, forward(idx, ids, mask)):
            o.append(x.float().cpu().numpy() if torch.is_tensor(x) else x)
    back = np.argsort(np.concatenate(rows))
    return tuple(np.concatenate(o)[back] for o in outs)


def model_feeds(model: ContentClassifierModel, split: Split, idx, ids, mask) -> dict[str, torch.Tensor]:
    """A batch of a prepared split as the classifier's inputs: ids and mask, and code points where the model has a
    character part."""
    feeds = {"input_ids": ids, "attention_mask": mask}
    if model.char_wide is not None:
        feeds[CHAR_INPUT] = split.char_ids(idx)
    return feeds


def torch_predict(model: ContentClassifierModel, split: Split) -> tuple:
    return predict(lambda idx, ids, mask: probabilities(model(**model_feeds(model, split, idx, ids, mask))), split)


def report(probs: tuple, data: Split, tag_threshold: float = 0.5) -> dict:
    return classifier_report(*probs, data.label.numpy(), data.tags.numpy(), data.index.numpy(), tag_threshold)


def evaluate(forward, data: Split, tag_threshold: float = 0.5) -> dict:
    """`forward(rows, ids, mask)` -> ClassifierOutput; classifier_report over the split."""
    return report(predict(lambda *batch: probabilities(forward(*batch)), data), data, tag_threshold)


HELD_OUT_SPLITS = ("val", "test", "public")  # the prepared splits held_out() draws on


def held_out_report(forward, data: dict[str, Split], tag_threshold: float = 0.5) -> dict:
    """classifier_report on every held-out split (val, test, test per source, public: a fixed public test set such
    as FewCLUE TNEWS test_public), with `forward(rows, ids, mask)` -> ClassifierOutput run once over each split."""
    probs = {s: predict(lambda *batch: probabilities(forward(*batch)), data[s]) for s in HELD_OUT_SPLITS if s in data}
    return held_out_reports(probs, data, tag_threshold)


def held_out_reports(probs: dict, data: dict, threshold: float) -> dict:
    """classifier_report per held-out split from one model's predictions on val, test and public (`probs`): the
    Toutiao and TNEWS parts of test are row selections, not second passes."""
    return {name: report(tuple(p[rows] for p in probs[base]), data[base].select(base, rows), threshold)
            for name, (base, rows) in held_out(data).items()}


CHECKPOINT_SECONDS = 180.0  # a resumable training saves its whole state at least this often, mid-epoch too


def native_bf16() -> bool:
    """Whether this CPU has bf16 matrix instructions (AMX-BF16 or AVX512-BF16, from /proc/cpuinfo on Linux): there
    bf16 autocast runs an encoder layer 2.2x (forward) to 2.4x (forward and backward) faster than fp32 (one e5-small
    layer, 32 titles of 19 tokens, 2 cores of a Xeon with AMX); elsewhere bf16 is emulated, and not faster."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " amx_bf16" in flags or " avx512_bf16" in flags


def trains_in_bf16(device: str) -> bool:
    """The default: training under bf16 autocast on a GPU, or on a CPU with native_bf16()."""
    return device.startswith("cuda") or native_bf16()


def train_loop(model, groups, data, epochs: int, lr: float, batch: int, step_loss, val_forward, log, device,
               seed: int = 0, resume: Path | None = None, checkpoint_seconds: float | None = None,
               bf16: bool | None = None):
    """AdamW (param groups may scale `lr` by their "lr_scale") with linear warm-up and cosine decay; keeps the
    state with the best validation accuracy. With `resume`, the whole training state is saved there after each
    epoch and every `checkpoint_seconds` (default CHECKPOINT_SECONDS) within one, and a run that finds the file goes
    on from there as if never stopped (the epoch's shuffle and the random state at the saved batch are part of the
    state). `bf16`: the training passes under bf16 autocast (default: trains_in_bf16);
    weights, optimizer and validation stay fp32."""
    checkpoint_seconds = CHECKPOINT_SECONDS if checkpoint_seconds is None else checkpoint_seconds
    bf16 = trains_in_bf16(device.type) if bf16 is None else bf16
    params = [p for g in groups for p in g["params"]]
    opt = torch.optim.AdamW([{"params": g["params"], "lr": lr * g.get("lr_scale", 1.0)} for g in groups],
                            weight_decay=0.01)
    total = epochs * math.ceil(len(data["train"]) / batch)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, s / max(1, total // 20)) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    gen = torch.Generator().manual_seed(seed)
    best, best_state, start, done, running = -1.0, None, 0, 0, 0.0
    if resume is not None and resume.exists():
        state = torch.load(resume, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        gen.set_state(state["gen"])
        if "rng" in state:  # states saved before mid-epoch checkpoints have neither it nor a batch count
            torch.set_rng_state(state["rng"])
        best, best_state, start = state["best"], state["best_state"], state["epoch"]
        done, running = state.get("batches", 0), state.get("running", 0.0)
        log(f"resumed from {resume} " + (f"in epoch {start + 1} after batch {done}" if done
                                         else f"after epoch {start}"))

    def save(epoch: int, batches: int, running: float, gen_state) -> None:
        """`epoch` finished epochs and `batches` of the next; `gen_state`: where that epoch's shuffle starts."""
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                    "gen": gen_state, "rng": torch.get_rng_state(), "best": best, "best_state": best_state,
                    "epoch": epoch, "batches": batches, "running": running}, resume.with_suffix(".tmp"))
        resume.with_suffix(".tmp").replace(resume)  # never a half-written state

    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    for epoch in range(start, epochs):
        model.train()
        t0 = saved = time.time()
        epoch_gen = gen.get_state()
        bar = tqdm(data["train"].batches(batch, True, gen), total=math.ceil(len(data["train"]) / batch),
                   desc=f"epoch {epoch + 1}/{epochs}", unit="batch", mininterval=5, leave=False)
        for step, batch_ in enumerate(bar):
            if step < done:  # trained before the interruption
                continue
            with amp:
                loss = step_loss(*(t.to(device) for t in batch_))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            running += loss.item()
            bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
            if resume is not None and time.time() - saved >= checkpoint_seconds:
                save(epoch, step + 1, running, epoch_gen)
                saved = time.time()
        model.eval()
        val = evaluate(val_forward, data["val"])
        log(f"epoch {epoch + 1}/{epochs} loss {running / (step + 1):.4f} val {val} ({time.time() - t0:.0f}s)")
        if val["accuracy"] > best:
            best = val["accuracy"]
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        done, running = 0, 0.0
        if resume is not None:
            save(epoch + 1, 0, 0.0, gen.get_state())
    model.load_state_dict(best_state)
    return model.eval()


def logger(path: Path):
    def log(msg: str):
        print(msg, flush=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(msg + "\n")
    return log


def save_without_embeddings(model: ContentClassifierModel, out: Path, metrics: dict, shard_bytes: int = 15 << 20):
    """Config + metrics as JSON, weights (minus the frozen word embeddings) in shards under `shard_bytes` each,
    small enough to commit to git."""
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.float().cpu() for k, v in model.state_dict().items() if k != "encoder.word.weight"}
    shards, current, size = [], {}, 0
    for k, v in state.items():
        if current and size + v.numel() * 4 > shard_bytes:
            shards.append(current)
            current, size = {}, 0
        current[k] = v
        size += v.numel() * 4
    shards.append(current)
    for i, shard in enumerate(shards):
        torch.save(shard, out / f"weights-{i}.pt")
    (out / "model.json").write_text(json.dumps({"config": model.cfg.to_dict(), "shards": len(shards),
                                                "metrics": metrics}, indent=1), encoding="utf-8")


def load_without_embeddings(path: Path, prep: Path) -> tuple[ContentClassifierModel, dict]:
    info = json.loads((path / "model.json").read_text(encoding="utf-8"))
    model = ContentClassifierModel(ClassifierConfig.from_dict(info["config"]))
    state = {}
    for i in range(info["shards"]):
        state.update(torch.load(path / f"weights-{i}.pt", map_location="cpu", weights_only=True))
    state["encoder.word.weight"] = torch.from_numpy(read_teacher(prep / "teacher.e5s1").array("emb.word").copy())
    model.load_state_dict(state)
    return model.eval(), info


# ---------------------------------------------------------------- finetune and distill
def teacher_layers(n_teacher: int, n_student: int) -> list[int]:
    """Evenly spaced teacher layers ending at the top one: 12 -> 2 gives [5, 11], 12 -> 3 gives [3, 7, 11]."""
    return [round((i + 1) * n_teacher / n_student) - 1 for i in range(n_student)]


def cached_forward(model: ContentClassifierModel, cache: dict, data: dict, first: int, device):
    """forward(rows, ids, mask) for a split: layers `first`.. on the cached state entering layer `first`."""
    def make(split_name):
        def forward(idx, ids, mask):
            x = data[split_name].padded(cache[split_name], idx.cpu()).to(device)
            return model.heads(*model.encoder.encode(x, mask.to(device), first), ids.to(device), mask.to(device))
        return forward
    return make


def finetune(prep: Path, out: Path, top: int, epochs: int, lr: float, batch: int, device,
             tag_pos_weight: float = 1.0, wide: WideConfig = WideConfig(), seed: int = 0,
             bf16: bool | None = None) -> None:
    """Fine-tune the top `top` layers + MMoE heads (+ the wide part) on the cached output of the frozen layers below.
    `seed` fixes the new heads' initial weights."""
    torch.manual_seed(seed)
    data, meta = load_prep(prep)
    log = logger(out.with_suffix(".log"))
    model = teacher_model(prep, meta, wide).to(device)
    first = model.cfg.encoder.layers - top
    cache = load_cache(prep, data, first)
    forward = cached_forward(model, cache, data, first, device)
    model.requires_grad_(False)
    encoder = [p for layer in model.encoder.layers[first:] for p in layer.parameters()]
    heads = [p for n, p in model.named_parameters() if not n.startswith("encoder.") and not n.startswith("project.")]
    for p in encoder + heads:
        p.requires_grad_(True)
    log(f"teacher: layers {first}..{model.cfg.encoder.layers - 1} + MMoE trained, layers below frozen and cached")

    def step_loss(idx, ids, mask, label, tags, index):
        return task_loss(forward("train")(idx, ids, mask), label, tags, index, tag_pos_weight)

    # The heads start from random weights: they learn 10x faster than the pretrained layers.
    train_loop(model, [{"params": encoder}, {"params": heads, "lr_scale": 10.0}], data, epochs, lr, batch,
               step_loss, forward("val"), log, device, resume=out.with_suffix(".resume.pt"), bf16=bf16)
    held = held_out_report(lambda idx, ids, mask: model(ids.to(device), mask.to(device)), data)
    log(f"teacher fp32 (torch): {held}")
    save_checkpoint(model, out, test=held["test"], held_out=held, top=top, tag_pos_weight=tag_pos_weight)


def distill(prep: Path, teacher_path: Path, layers: int, out: Path, epochs: int, lr: float, batch: int,
            temperature: float, device, seed: int = 0, bf16: bool | None = None) -> None:
    """Student initialised from evenly spaced teacher layers (the wide part, heads and projection copied whole);
    loss = KD(T) + 0.5 CE + tag BCE (teacher/gold mix) + index MSE to the teacher + hidden-state MSE to the mapped
    teacher layers + (1 - cos) to the teacher vector. Where the prep has a transfer set, its unlabelled titles join
    the training rows with the teacher's targets alone. `seed` seeds torch first, as finetune's."""
    torch.manual_seed(seed)
    data, meta = load_prep(prep)
    out.mkdir(parents=True, exist_ok=True)
    log = logger(out / "train.log")
    teacher, ckpt = load_checkpoint(teacher_path)
    teacher = teacher.to(device).requires_grad_(False)
    n_teacher = teacher.cfg.encoder.layers
    first = n_teacher - ckpt["top"]
    picked = teacher_layers(n_teacher, layers)
    caches = {k: load_cache(prep, data, k) for k in {first} | {j + 1 for j in picked if j + 1 < first}}
    if "transfer" in data:
        data = {**data, "train": Split.join("train", [data["train"], data["transfer"]])}
        caches = {k: {**c, "train": np.concatenate([c["train"], c["transfer"]])} for k, c in caches.items()}
        log(f"distilling on {len(data['train'])} titles: train + transfer set")
    teacher_fwd = cached_forward(teacher, caches[first], data, first, device)("train")
    cfg = ClassifierConfig.from_dict(ckpt["config"])
    cfg.encoder.layers = layers
    student = ContentClassifierModel(cfg)
    state = {k: v for k, v in teacher.state_dict().items() if not k.startswith("encoder.layers.")}
    for i, j in enumerate(picked):
        state.update({k.replace(f"encoder.layers.{j}.", f"encoder.layers.{i}."): v
                      for k, v in teacher.state_dict().items() if k.startswith(f"encoder.layers.{j}.")})
    student.load_state_dict(state)
    student = student.to(device)
    student.encoder.word.weight.requires_grad_(False)
    params = [p for p in student.parameters() if p.requires_grad]
    student_fwd = lambda idx, ids, mask: student(ids.to(device), mask.to(device))  # noqa: E731
    log(f"student {layers} layers from teacher layers {picked}; before distillation, val: "
        f"{evaluate(student_fwd, data['val'])}")
    T = temperature

    def step_loss(idx, ids, mask, label, tags, index):
        with torch.no_grad():
            t = teacher_fwd(idx, ids, mask)
            targets = [t.hidden[j + 1 - first] if j + 1 >= first else
                       data["train"].padded(caches[j + 1]["train"], idx.cpu()).to(device) for j in picked]
        s = student(ids, mask)
        m = mask[..., None].to(s.pooled.dtype)
        kd = F.kl_div(F.log_softmax(s.primary_logits / T, -1), F.softmax(t.primary_logits.float() / T, -1),
                      reduction="batchmean") * T * T
        gold = label >= 0  # transfer-set rows (label -1) learn from the teacher alone
        t_tags = torch.sigmoid(t.tag_logits.float())
        tag_target = torch.where(gold[:, None], 0.5 * t_tags + 0.5 * tags, t_tags)
        hidden = sum(((s.hidden[i + 1] - target) ** 2 * m).sum() / (m.sum() * s.pooled.shape[-1])
                     for i, target in enumerate(targets)) / layers
        ce = F.cross_entropy(s.primary_logits[gold], label[gold]) if gold.any() else kd * 0
        return (kd + 0.5 * ce
                + tag_loss(s.tag_logits, tag_target, ckpt.get("tag_pos_weight", 1.0))
                + F.mse_loss(s.index, t.index.float()) + hidden
                + (1 - F.cosine_similarity(s.vector, t.vector.float(), dim=-1)).mean())

    train_loop(student, [{"params": params}], data, epochs, lr, batch, step_loss, student_fwd, log, device, seed=1,
               resume=out / "resume.pt", bf16=bf16)
    held = held_out_report(student_fwd, data)
    log(f"student fp32 (torch) {layers} layers: {held}")
    save_without_embeddings(student, out, {"student_fp32_torch": held["test"], "held_out": held,
                                           "teacher_fp32_torch": ckpt["test"],
                                           "teacher_layers": picked, "teacher_trained_top": ckpt["top"],
                                           "epochs": epochs, "lr": lr, "temperature": T})


# The last weight lets the character part decide alone (the student's log-probabilities, within about 20 of each
# other, then only break its ties): a build is never below its character TF-IDF model on validation.
ALPHA_GRID = (0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 12.0, 20.0, 1000.0)
SVM_C_GRID = (0.3, 1.0)


def char_features(part: HashedTfidf, split):
    """The split's titles as the character part's sparse TF-IDF rows (with its current idf)."""
    from scipy import sparse

    return sparse.vstack([part.sparse_features(split.char_ids(i)) for i in torch.arange(len(split)).split(4096)])


def fit_idf(part: HashedTfidf, splits: list):
    """Set the part's idf from `splits` (scikit-learn's smoothed idf); returns their rows with it, stacked."""
    from scipy import sparse

    with torch.no_grad():  # idf = 1 while counting: each row's buckets once
        part.idf.weight.fill_(1.0)
    x = sparse.vstack([char_features(part, split) for split in splits])
    df = np.bincount(x.tocoo().col, minlength=part.idf.num_embeddings)
    with torch.no_grad():
        part.idf.weight.copy_(torch.from_numpy(np.log((1 + x.shape[0]) / (1 + df)) + 1)[:, None])
    return sparse.vstack([char_features(part, split) for split in splits])


def fold_char_part(part: HashedTfidf, svm, alpha: float) -> None:
    """logits = student + alpha * SVM scores: one table and bias, no extra graph nodes."""
    with torch.no_grad():
        part.table.weight.copy_(torch.from_numpy(alpha * svm.coef_.T))
        part.bias.copy_(torch.from_numpy(alpha * svm.intercept_))


def widen(prep: Path, student_path: Path, out: Path, buckets: int) -> None:
    """Add the character part to a distilled student: a linear SVM on the titles' TF-IDF vectors over hashed
    character 1-3-grams (HashedTfidf; idf from the training split), fitted on the training split's labels. Its C
    and its weight against the student's log-probabilities are chosen together on validation (SVM_C_GRID x
    ALPHA_GRID, whose largest weight is the character part alone) and the weight folded into its table and bias.
    The deep part is unchanged, so the two stay complementary (each sees what the other misses)."""
    from sklearn.svm import LinearSVC

    data, meta = load_prep(prep)
    out.mkdir(parents=True, exist_ok=True)
    log = logger(out / "train.log")
    student, info = load_without_embeddings(student_path, prep)
    cfg = WideConfig(buckets, len(meta["labels"]))
    part = HashedTfidf(cfg)
    x, x_val = fit_idf(part, [data["train"]]), char_features(part, data["val"])
    deep = np.log(torch_predict(student, data["val"])[0] + 1e-9)
    gold = data["val"].label.numpy()
    best = None
    for c in SVM_C_GRID:
        t0 = time.time()
        svm = LinearSVC(C=c).fit(x, data["train"].label.numpy())
        wide = svm.decision_function(x_val)
        by_alpha = {a: round(float(((deep + a * wide).argmax(1) == gold).mean()), 4) for a in ALPHA_GRID}
        alpha = max(by_alpha, key=by_alpha.get)
        alone = float((wide.argmax(1) == gold).mean())
        log(f"character part, LinearSVC(C={c}): val accuracy alone {alone:.4f}, with the student by weight "
            f"{by_alpha} ({time.time() - t0:.0f}s)")
        if best is None or by_alpha[alpha] > best[0]:
            best = (by_alpha[alpha], c, alpha, alone, by_alpha, svm)
    _, c, alpha, alone, by_alpha, svm = best
    log(f"chosen: C={c}, weight {alpha}")
    fold_char_part(part, svm, alpha)
    student.cfg.char_wide = cfg
    student.char_wide = part
    held = held_out_reports({s: torch_predict(student, data[s]) for s in HELD_OUT_SPLITS if s in data}, data, 0.5)
    log(f"student + character part (torch): {held}")
    save_without_embeddings(student, out, {**info["metrics"], "student_fp32_torch": held["test"], "held_out": held,
                                           "char_part": {"buckets": buckets, "model": f"LinearSVC(C={c})", "C": c,
                                                         "val_accuracy_alone": round(alone, 4),
                                                         "weight": alpha, "val_accuracy_by_weight": by_alpha}})


def refit_char_part(student: ContentClassifierModel, data: dict, c: float, alpha: float) -> ContentClassifierModel:
    """A copy of `student` whose character part is fitted again, with the C and weight chosen on validation, on
    the training and validation titles together (test stays held out): the recipe is fixed, so validation's titles
    can teach too."""
    import copy

    from sklearn.svm import LinearSVC

    refit = copy.deepcopy(student)
    splits = [data["train"], data["val"]]
    svm = LinearSVC(C=c).fit(fit_idf(refit.char_wide, splits), np.concatenate([s.label.numpy() for s in splits]))
    fold_char_part(refit.char_wide, svm, alpha)
    return refit


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m edge_rec_export.training.train_classifier", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="split the corpora, prune the teacher vocabulary, tokenize")
    p.add_argument("--data", type=Path, default=Path("../shared/data"))
    p.add_argument("--out", type=Path, default=Path("work/prep"))
    p.add_argument("--salt", default="13", help="the split's hash salt")
    c = sub.add_parser("cache", help="run the frozen teacher layers once and store their outputs")
    c.add_argument("--prep", type=Path, default=Path("work/prep"))
    c.add_argument("--keep", default="6,10", help="hidden states to store (state entering layer k)")
    c.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    for name, help_ in (("finetune", "fine-tune the teacher's top layers + MMoE"), ("distill", "distill a student")):
        q = sub.add_parser(name, help=help_)
        q.add_argument("--prep", type=Path, default=Path("work/prep"))
        q.add_argument("--out", type=Path, required=True)
        q.add_argument("--epochs", type=int, default=3)
        q.add_argument("--lr", type=float, default=1e-4 if name == "finetune" else 2e-4)
        q.add_argument("--batch", type=int, default=32)
        q.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
        q.add_argument("--seed", type=int, default=0)
        if name == "finetune":
            q.add_argument("--top", type=int, default=2, help="layers fine-tuned; those below stay frozen")
            q.add_argument("--tag-pos-weight", type=float, default=1.0, help="BCE weight of positive tags")
            q.add_argument("--wide-buckets", type=int, default=0, help="rows of the hashed n-gram table (0 = none)")
            q.add_argument("--wide-dim", type=int, default=64, help="width of the hashed n-gram embeddings")
        if name == "distill":
            q.add_argument("--teacher", type=Path, required=True)
            q.add_argument("--layers", type=int, default=2)
            q.add_argument("--temperature", type=float, default=2.0)
    w = sub.add_parser("widen", help="add the character part (hashed character n-grams -> class scores) to a student")
    w.add_argument("--prep", type=Path, default=Path("work/prep"))
    w.add_argument("--student", type=Path, required=True)
    w.add_argument("--out", type=Path, required=True)
    w.add_argument("--buckets", type=int, default=131072, help="rows of the hashed character n-gram table")
    a = ap.parse_args(argv)
    torch.backends.cuda.matmul.allow_tf32 = True
    if a.cmd == "widen":
        return widen(a.prep, a.student, a.out, a.buckets)
    if a.cmd == "prepare":
        return prepare(news_corpus(a.data), a.out, a.salt)
    device = torch.device(a.device)
    if a.cmd == "cache":
        return build_cache(a.prep, [int(k) for k in a.keep.split(",")], device)
    if a.cmd == "finetune":
        finetune(a.prep, a.out, a.top, a.epochs, a.lr, a.batch, device, a.tag_pos_weight,
                 WideConfig(a.wide_buckets, a.wide_dim), a.seed)
    else:
        distill(a.prep, a.teacher, a.layers, a.out, a.epochs, a.lr, a.batch, a.temperature, device, a.seed)


if __name__ == "__main__":
    main()
