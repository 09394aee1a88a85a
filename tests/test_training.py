"""The training pipeline end to end on a tiny teacher file and a synthetic, learnable task: cache -> finetune ->
distill -> package-style reload and export."""
import json

import numpy as np
import pytest
import torch

from edge_rec_export.bundle.classifier_bundle import export_classifier
from edge_rec_export.data.teacher_file import write_teacher
from edge_rec_export.training.train_classifier import load_without_embeddings, main, tag_loss, teacher_layers
from test_teacher_file import tiny_teacher


def test_teacher_layers_mapping():
    assert teacher_layers(12, 2) == [5, 11]
    assert teacher_layers(12, 3) == [3, 7, 11]
    assert teacher_layers(12, 4) == [2, 5, 8, 11]


def test_tag_pos_weight_raises_the_cost_of_missed_tags():
    logits, target = torch.full((1, 4), -2.0), torch.tensor([[1.0, 0, 0, 0]])
    assert tag_loss(logits, target, 10.0) > 5 * tag_loss(logits, target, 1.0)


@pytest.fixture(scope="module")
def prep(tmp_path_factory):
    """Titles whose label is which of three marker tokens they contain; tag k when token 20 + k is present."""
    out = tmp_path_factory.mktemp("prep")
    tf, _ = tiny_teacher()
    write_teacher(tf, out / "teacher.e5s1")
    rng = np.random.default_rng(0)
    arrays = {}
    for name, n in (("train", 192), ("val", 64), ("test", 64), ("transfer", 64)):
        lens = rng.integers(5, 12, n)
        ids = np.full((n, 16), tf.pad, dtype=np.uint16)
        label = rng.integers(0, 3, n)
        tags = np.zeros((n, 4), dtype=np.uint8)
        for i, ln in enumerate(lens):
            ids[i, :ln] = rng.integers(30, tf.config.vocab_size, ln)
            ids[i, 0], ids[i, ln - 1] = tf.bos, tf.eos
            ids[i, 1 + label[i] % (ln - 2)] = 10 + label[i]
            if label[i] == 0:
                ids[i, 2] = 20
                tags[i, 0] = 1
        if name == "transfer":  # unlabelled: the student learns these from the teacher alone
            label = np.full(n, -1)
        arrays.update({f"{name}_ids": ids, f"{name}_len": lens.astype(np.int16), f"{name}_label": label,
                       f"{name}_source": (np.arange(n) % 4 != 0).astype(np.int8),  # 0 = tnews, 1 = toutiao
                       f"{name}_chars": np.where(np.arange(16) < 6, 0x4e00 + rng.integers(0, 50, (n, 16))
                                                 + 100 * label[:, None], 0).astype(np.int32),
                       f"{name}_tags": tags,
                       f"{name}_index": np.where(label == 1, np.nan, 0.3 + 0.2 * label).astype(np.float32)})
    np.savez(out / "data.npz", **arrays)
    (out / "meta.json").write_text(json.dumps({"labels": ["a", "b", "c"], "tags": ["t0", "t1", "t2", "t3"],
                                               "max_length": 16, "pad_id": tf.pad,
                                               "sources": ["tnews", "toutiao"]}))
    return out


def test_cache_finetune_distill(prep):
    torch.manual_seed(0)
    main(["cache", "--prep", str(prep), "--keep", "1", "--device", "cpu"])
    main(["finetune", "--prep", str(prep), "--top", "1", "--epochs", "6", "--lr", "1e-3", "--batch", "16",
          "--device", "cpu", "--tag-pos-weight", "3", "--wide-buckets", "97", "--wide-dim", "8",
          "--out", str(prep / "teacher.pt")])
    teacher = torch.load(prep / "teacher.pt", weights_only=True)
    assert teacher["top"] == 1 and teacher["tag_pos_weight"] == 3 and teacher["config"]["wide"]["buckets"] == 97
    assert set(teacher["held_out"]) == {"val", "test", "test_toutiao", "test_tnews"}
    assert teacher["held_out"]["test_tnews"]["n"] == 16  # every 4th test title is marked TNEWS
    assert (prep / "teacher.resume.pt").exists()  # per-epoch state: a restarted run goes on from it
    assert teacher["test"]["accuracy"] > 0.6  # chance is 1/3: the marker tokens were learned
    main(["distill", "--prep", str(prep), "--teacher", str(prep / "teacher.pt"), "--layers", "1", "--epochs", "6",
          "--lr", "1e-3", "--batch", "16", "--device", "cpu", "--out", str(prep / "student")])
    student, info = load_without_embeddings(prep / "student", prep)
    assert student.cfg.encoder.layers == 1 and info["metrics"]["teacher_layers"] == [1]
    assert info["metrics"]["student_fp32_torch"]["accuracy"] > 0.5
    assert student.wide is not None and "distilling on 256 titles" in (prep / "student" / "train.log").read_text()
    # The frozen word embeddings come back bit for bit from the teacher file.
    from edge_rec_export.data.teacher_file import read_teacher
    np.testing.assert_array_equal(student.encoder.word.weight.detach().numpy(),
                                  read_teacher(prep / "teacher.e5s1").array("emb.word"))
    ids = torch.tensor([[0, 10, 40, 2]])
    export_classifier(student, prep / "onnx", {"input_ids": ids, "attention_mask": torch.ones_like(ids)})
    # The character part: its code points carry the label (every text has 6 characters of its label's range).
    main(["widen", "--prep", str(prep), "--student", str(prep / "student"), "--out", str(prep / "wide"),
          "--buckets", "499"])
    wide, info = load_without_embeddings(prep / "wide", prep)
    part = info["metrics"]["char_part"]
    assert wide.char_wide is not None and part["val_accuracy_alone"] > 0.9 and part["weight"] > 0
    assert info["metrics"]["held_out"]["test"]["accuracy"] > 0.9
    chars = torch.tensor([[0x4e00 + 205, 0x4e00 + 230, 0x4e00 + 241, 0]])
    _, _, diff = export_classifier(wide, prep / "onnx-chars", {"input_ids": ids, "attention_mask": torch.ones_like(ids),
                                                                "char_ids": chars})
    assert diff < 1e-4


def test_resume_goes_on_after_the_last_finished_epoch(prep, tmp_path):
    """A finished run's state file makes a re-run skip straight to the end with the same weights."""
    args = ["finetune", "--prep", str(prep), "--top", "1", "--epochs", "2", "--lr", "1e-3", "--batch", "32",
            "--device", "cpu", "--out", str(tmp_path / "t.pt")]
    main(["cache", "--prep", str(prep), "--keep", "1", "--device", "cpu"])
    main(args)
    first = torch.load(tmp_path / "t.pt", weights_only=True)["state_dict"]
    main(args)
    assert "resumed from" in (tmp_path / "t.log").read_text()
    again = torch.load(tmp_path / "t.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(first[k], again[k]) for k in first)


def test_an_interrupted_training_goes_on_mid_epoch_as_if_never_stopped(prep, tmp_path, monkeypatch):
    """Ctrl-C in the middle of an epoch loses at most CHECKPOINT_SECONDS: the re-run starts at the saved batch of
    that epoch and ends with the weights of a run never stopped."""
    import edge_rec_export.training.train_classifier as tc

    main(["cache", "--prep", str(prep), "--keep", "1", "--device", "cpu"])
    monkeypatch.setattr(tc, "CHECKPOINT_SECONDS", 0.0)  # a state after every batch

    def finetune(name):
        main(["finetune", "--prep", str(prep), "--top", "1", "--epochs", "2", "--lr", "1e-3", "--batch", "32",
              "--device", "cpu", "--out", str(tmp_path / f"{name}.pt")])
        return torch.load(tmp_path / f"{name}.pt", weights_only=True)["state_dict"]

    never_stopped = finetune("a")
    real, calls = tc.task_loss, []

    def ctrl_c_at_batch_9(*args, **kwargs):  # 192 titles in batches of 32: the third batch of epoch 2
        calls.append(1)
        if len(calls) == 9:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(tc, "task_loss", ctrl_c_at_batch_9)
    with pytest.raises(KeyboardInterrupt):
        finetune("b")
    monkeypatch.setattr(tc, "task_loss", real)
    resumed = finetune("b")
    assert "resumed from" in (tmp_path / "b.log").read_text() and "in epoch 2 after batch 2" in \
        (tmp_path / "b.log").read_text()
    assert all(torch.equal(never_stopped[k], resumed[k]) for k in never_stopped)


def test_training_batches_are_of_one_length_and_cover_the_split_once_an_epoch(prep):
    from edge_rec_export.training.train_classifier import BUCKET_BATCHES, load_prep

    train = load_prep(prep)[0]["train"]
    gen = torch.Generator().manual_seed(0)
    epochs = [[idx for idx, *_ in train.batches(8, True, gen)] for _ in range(2)]
    for parts in epochs:
        assert sorted(torch.cat(parts).tolist()) == list(range(len(train)))
        assert all(len(p) == 8 for p in parts)  # 192 rows: no short batch in the middle of an epoch
        spread = [int(train.len[p].max() - train.len[p].min()) for p in parts]
        assert np.mean(spread) <= 2  # random batches of 8 of lengths 5-11 spread ~5
    assert [p.tolist() for p in epochs[0]] != [p.tolist() for p in epochs[1]]
    assert len(train) <= 8 * BUCKET_BATCHES * 2  # one or two runs here: batch order must still be shuffled
    assert [int(train.len[p].max()) for p in epochs[0]] != sorted(int(train.len[p].max()) for p in epochs[0])


def test_predictions_come_back_in_the_splits_order(prep):
    from edge_rec_export.training.train_classifier import load_prep, predict

    val = load_prep(prep)[0]["val"]
    primary, tags, index = predict(lambda idx, ids, mask: (idx[:, None].float(), ids[:, :1], mask.sum(1)), val,
                                   batch=8)
    assert primary[:, 0].tolist() == list(range(len(val)))
    first_ids = val.feeds(slice(None))["input_ids"][:, 0]
    assert index.tolist() == val.len.tolist() and tags[:, 0].tolist() == first_ids.tolist()
