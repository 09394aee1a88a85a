"""Tiny random-weight models built in code: no test needs the teacher wheel or the network."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

try:
    import torch

    from edge_rec_export.models.classifier import ClassifierConfig, ContentClassifierModel
    from edge_rec_export.bundle.classifier_bundle import export_classifier, write_classifier_bundle
    from edge_rec_export.models.encoder import EncoderConfig
    from edge_rec_export.data.teacher_file import F32, Q4_0, RawTensor, TeacherFile
    from edge_rec_export.data.tokenizer import build_tokenizer
except ImportError:  # the runtime alone (scripts/check_arm64.sh runs the torch-free test files on arm64)
    EXPORT_SIDE = {"torch", "ClassifierConfig", "ContentClassifierModel", "export_classifier", "write_classifier_bundle",
                   "EncoderConfig", "F32", "Q4_0", "RawTensor", "TeacherFile", "build_tokenizer"}

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(item, call):
        """Without the export side, a test that needs it (a tiny model built in torch) is skipped, not failed."""
        report = (yield).get_result()
        err = call.excinfo.value if call.excinfo is not None else None
        missing = (isinstance(err, NameError) and err.name in EXPORT_SIDE) or (
            isinstance(err, ModuleNotFoundError) and (err.name or "").split(".")[0] in {"torch", "edge_rec_export", "onnx", "sklearn"})
        if missing:
            report.outcome, report.longrepr = "skipped", (str(item.path), item.location[1] or 0,
                                                          f"Skipped: needs the export side ({err})")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TITLES = ["周杰伦与昆凌背靠背秀恩爱", "首个糖尿病人工智能医生来了", "廖英强被证监会处罚", "故宫如何修文物",
          "深圳房价是沈阳6倍", "以色列空袭之后俄战机起飞", "Hello world news", "比特币价格大涨 AI 芯片"]
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]


def tiny_pieces() -> tuple[list[str], np.ndarray]:
    chars = sorted({c for t in TITLES for c in t if not c.isspace()})
    words = ["▁Hello", "▁world", "▁news", "人工智能", "比特币", "▁AI"]
    pieces = SPECIALS + ["▁"] + chars + words
    scores = np.array([0.0] * 4 + [-2.0] + [-5.0] * len(chars) + [-3.0] * len(words), dtype=np.float32)
    return pieces, scores


def tiny_teacher(seed: int = 0) -> tuple[TeacherFile, dict]:
    rng = np.random.default_rng(seed)
    pieces, scores = tiny_pieces()
    cfg = EncoderConfig(vocab_size=len(pieces) + 3, hidden=32, layers=2, heads=4, ff=64, max_positions=40, pad_id=1)
    h, ff = cfg.hidden, cfg.ff
    arrays = {"emb.word": rng.normal(0, 0.5, (cfg.vocab_size, h)), "emb.pos": rng.normal(0, 0.1, (40, h)),
              "emb.type": rng.normal(0, 0.1, (2, h)), "emb.ln.w": 1 + rng.normal(0, 0.05, h),
              "emb.ln.b": rng.normal(0, 0.05, h)}
    for layer in range(cfg.layers):
        for name, shape in (("q", (h, h)), ("k", (h, h)), ("v", (h, h)), ("ao", (h, h)), ("fi", (ff, h)),
                            ("fo", (h, ff))):
            arrays[f"l{layer}.{name}.w"] = rng.normal(0, 0.2, shape)
            arrays[f"l{layer}.{name}.b"] = rng.normal(0, 0.05, shape[0])
        for ln in ("aln", "oln"):
            arrays[f"l{layer}.{ln}.w"] = 1 + rng.normal(0, 0.05, h)
            arrays[f"l{layer}.{ln}.b"] = rng.normal(0, 0.05, h)
    tensors = {k: RawTensor.from_numpy(v, Q4_0 if v.ndim == 2 and not k.startswith(("emb.pos", "emb.type"))
                                       else F32) for k, v in arrays.items()}
    tf = TeacherFile(cfg, 2, 32, pieces, scores, 0, 2, 1, 3, {0x01: [], 0x09: [32], 0xFF21: [0x41]}, tensors)
    return tf, arrays


def tiny_tokenizer():
    pieces, scores = tiny_pieces()
    return build_tokenizer(pieces, scores, unk=3, bos=0, eos=2, norm_map={0x01: [], 0x09: [32]})


def tiny_model(seed: int = 0, vocab: int | None = None, n_tags: int = 6) -> ContentClassifierModel:
    torch.manual_seed(seed)
    vocab = vocab or len(tiny_pieces()[0])
    enc = EncoderConfig(vocab_size=vocab, hidden=32, layers=2, heads=4, ff=64, max_positions=64)
    return ContentClassifierModel(ClassifierConfig(enc, n_primary=5, n_tags=n_tags, n_experts=3, expert_hidden=32,
                                                   expert_dim=16, tower_hidden=24, index_hidden=8,
                                                   vector_dim=16)).eval()


def random_batch(vocab: int, batch: int = 4, length: int = 11, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, vocab, (batch, length), generator=g)
    mask = torch.ones(batch, length, dtype=torch.long)
    for b in range(batch):
        n = int(torch.randint(3, length + 1, (1,), generator=g))
        mask[b, n:] = 0
        ids[b, 0], ids[b, n - 1] = 0, 2
        ids[b, n:] = 1
    return {"input_ids": ids, "attention_mask": mask}


LABELS = ["story", "culture", "sports", "finance", "tech"]
TAGS = ["ai", "stock", "film", "war", "house", "game"]


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory):
    """(model, fp32 onnx, int8 onnx, parity diff) for the tiny classifier."""
    model = tiny_model()
    work = tmp_path_factory.mktemp("export")
    fp32, int8, diff = export_classifier(model, work, random_batch(model.cfg.encoder.vocab_size))
    return model, fp32, int8, diff


def make_bundle(out: Path, onnx_path: Path, **overrides) -> Path:
    kwargs = dict(name="tiny", primary_labels=LABELS, tags=TAGS, max_length=16, pad_id=1,
                  pipeline={"tag_threshold": 0.5}, metrics={"note": "random weights"})
    kwargs.update(overrides)
    return write_classifier_bundle(out, onnx_path, tiny_tokenizer(), **kwargs)


@pytest.fixture()
def tiny_bundle(tiny_export, tmp_path) -> Path:
    return make_bundle(tmp_path / "bundle", tiny_export[2])


# ---------------------------------------------------------------- tiny recall + ranker models
RANK_LABELS = [f"primary:{p}" for p in LABELS] + [f"tag:{t}" for t in TAGS]


def tiny_click_log(n_items: int = 12, seed: int = 0):
    """Random item features (labels of the tiny taxonomy, c, 16-d vectors) and three visits to export with."""
    from edge_rec_export.data.interactions import Impression, ItemTable

    rng = np.random.default_rng(seed)
    labels = [[int(rng.integers(1, 6))] + list(rng.choice(np.arange(6, 12), 2, replace=False)) for _ in range(n_items)]
    vectors = rng.normal(size=(n_items, 16)).astype(np.float32)
    items = ItemTable.build([str(i) for i in range(n_items)], labels, rng.random(n_items),
                            vectors / np.linalg.norm(vectors, axis=1, keepdims=True), RANK_LABELS, 3)
    visits = [Impression(0, v, np.arange(1, 1 + v * 3), np.array([2, 5, 7, 9]), np.array([1, 0, 0, 1], np.float32))
              for v in range(1, 4)]
    return items, visits


@pytest.fixture(scope="session")
def tiny_ranking(tmp_path_factory):
    """{role: onnx} for a tiny DSSM recall model (fp32) and a tiny CTR ranker (INT8), checked against torch."""
    from edge_rec_export.models.ctr import CTRConfig, CTRModel
    from edge_rec_export.models.dssm import DSSM, DSSMConfig
    from edge_rec_export.bundle.package_ranking import export_ranking_model, export_recall_sides
    from edge_rec_export.bundle.quantize import quantize_int8
    from edge_rec_export.training.train_ranking import ItemTensors

    torch.manual_seed(0)
    items, visits = tiny_click_log()
    tensors = ItemTensors(items)
    work = tmp_path_factory.mktemp("ranking")
    dssm = DSSM(DSSMConfig(len(RANK_LABELS), 3, history_length=6, label_dim=8, hidden=16, out_dim=8))
    ctr = CTRModel(CTRConfig(len(RANK_LABELS), 3, vector_dim=16, history_length=4, label_dim=8, vector_proj=8,
                             item_dim=8, hidden=8, mlp=16, dropout=0.0))
    recall, _ = export_ranking_model(dssm, tensors, visits, work / "recall.onnx")
    sides, _ = export_recall_sides(dssm, tensors, visits, recall, work)
    from edge_rec_export.bundle.package_ranking import calibration_feeds
    ranker = quantize_int8(export_ranking_model(ctr, tensors, visits, work / "ranker.fp32.onnx")[0],
                           work / "ranker.onnx", calibration_feeds(ctr, tensors, visits))
    return {"recall": recall, **sides, "ranker": ranker, "models": {"recall": dssm.eval(), "ranker": ctr.eval()}}


def make_rec_bundle(out: Path, tiny_export, tiny_ranking, pipeline: dict | None = None,
                    roles=("recall", "ranker")) -> Path:
    """A bundle with the tiny classifier and ranking models; `roles` may add the recall model's two sides."""
    from edge_rec_export.bundle.package_ranking import add_to_bundle

    make_bundle(out, tiny_export[1])  # fp32 classifier: batch-invariant scores
    add_to_bundle(out, {r: tiny_ranking[r] for r in roles},
                  {"ranking": {"labels": RANK_LABELS}, "pipeline": pipeline or {}})
    return out


@pytest.fixture()
def rec_bundle(tiny_export, tiny_ranking, tmp_path) -> Path:
    return make_rec_bundle(tmp_path / "rec", tiny_export, tiny_ranking)
