"""Chinese news titles (Toutiao + TNEWS, the same 15 categories) -> the default bundle's de-duplicated `Corpus`.

Keywords come from the files' keyword fields; FewCLUE's unlabelled titles and THUCNews titles are the transfer set.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

from edge_rec_export.data.corpus import Corpus, Example, assign_splits, fresh_texts, normalise

CODES = ["100", "101", "102", "103", "104", "106", "107", "108", "109", "110", "112", "113", "114", "115", "116"]
NAMES = ["story", "culture", "entertainment", "sports", "finance", "house", "car", "edu", "tech", "military",
         "travel", "world", "stock", "agriculture", "game"]


def read_corpora(data_dir: Path) -> list[Example]:
    """The v2 bundle's corpora: three files, de-duplicated by exact title (first label wins; keywords merged). Kept
    so that bundles trained on that split (`bundle_splits`) are still measured on titles they held out."""
    data_dir = Path(data_dir)
    return _deduplicate([("toutiao", _toutiao_rows(data_dir, more=False)),
                         ("tnews", _tnews_rows(data_dir, TNEWS_FILES[:2]))], key=lambda title: title)


def _keywords(field: str) -> list[str]:
    return list(dict.fromkeys(k.strip() for k in field.split(",") if k.strip()))


def split(examples: list[Example], seed: int = 13, val: float = 0.1, test: float = 0.1):
    """Seeded shuffle then cut; titles are unique after read_corpora, so no title is in two splits."""
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_test, n_val = int(len(order) * test), int(len(order) * val)
    pick = lambda idx: [examples[i] for i in idx]  # noqa: E731
    return pick(order[n_test + n_val:]), pick(order[n_test:n_test + n_val]), pick(order[:n_test])


def _toutiao_rows(data_dir: Path, more: bool = True):
    for line in (data_dir / "toutiao_partial" / "toutiao_cat_data.dev.txt").read_text(encoding="utf-8").splitlines():
        parts = line.split("_!_")
        if len(parts) >= 4:
            yield parts[3], parts[1], _keywords(parts[4] if len(parts) > 4 else "")
    for line in (data_dir / "toutiao_partial" / "toutiao_titles_labelidx.txt").read_text(encoding="utf-8").splitlines():
        title, _, idx = line.rpartition("_!_")
        if title and idx.isdigit() and int(idx) < len(CODES):
            yield title, CODES[int(idx)], []
    five = data_dir / "toutiao_more" / "toutiao_titles_5class.txt"
    if more and five.is_file():
        for line in five.read_text(encoding="utf-8").splitlines():
            title, _, code = line.rpartition("_!_")
            if title:
                yield title, code, []


def _json_lines(path: Path):
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            yield json.loads(line)


def _tnews_rows(data_dir: Path, names):
    for name in names:
        path = data_dir / name
        if path.is_file():
            for d in _json_lines(path):
                if "label" in d and "sentence" in d:
                    yield d["sentence"], str(d["label"]), _keywords(d.get("keywords", ""))


TNEWS_FILES = ("tnews_partial/dev.json", "tnews_partial/test.json", "fewclue_tnews/train_few_all.json",
               "fewclue_tnews/dev_few_all.json")
PUBLIC_TEST = "fewclue_tnews/test_public.json"


def read_labelled(data_dir: Path) -> list[Example]:
    """All labelled titles of every Toutiao/TNEWS file, de-duplicated by normalised title (first label wins,
    keywords merged; a title in any Toutiao file counts as Toutiao). Titles of FewCLUE's test_public come marked
    `public`, so they are split off whole."""
    data_dir = Path(data_dir)
    public = {normalise(t) for t, _, _ in _tnews_rows(data_dir, [PUBLIC_TEST])}
    return _deduplicate([("toutiao", _toutiao_rows(data_dir)),
                         ("tnews", _tnews_rows(data_dir, TNEWS_FILES + (PUBLIC_TEST,)))], normalise, public)


def _deduplicate(sources, key, public: set[str] = frozenset()) -> list[Example]:
    """Examples from (source, rows of (title, code, keywords)) in order, one per key(title): the first label wins,
    keywords are merged; rows with an empty title or an unknown code are dropped."""
    seen: dict[str, Example] = {}
    for source, rows in sources:
        for title, code, kws in rows:
            title = title.strip()
            k = key(title)
            if not k or code not in CODES:
                continue
            if k in seen:
                seen[k].keywords = list(dict.fromkeys(seen[k].keywords + kws))
            else:
                seen[k] = Example(title, CODES.index(code), kws, source, k in public)
    return list(seen.values())


def read_transfer(data_dir: Path, exclude: list[Example]) -> list[str]:
    """Unlabelled news titles for distillation (FewCLUE TNEWS `unlabeled`, THUCNews titles), de-duplicated and
    without any title of `exclude` (the held-out splits), so no held-out title is ever seen in training."""
    data_dir = Path(data_dir)
    unlabelled = data_dir / "fewclue_tnews" / "unlabeled.json"
    titles = [d["sentence"] for d in _json_lines(unlabelled) if "sentence" in d] if unlabelled.is_file() else []
    for name in ("dev.txt", "test.txt"):
        path = data_dir / "thucnews_titles_devtest" / name
        if path.is_file():
            titles += [line.rpartition("\t")[0] for line in path.read_text(encoding="utf-8").splitlines()]
    return fresh_texts(titles, exclude)


def news_corpus(data_dir: Path) -> Corpus:
    """Every labelled title (read_labelled) and the transfer set (read_transfer) of the shared data."""
    examples = read_labelled(data_dir)
    return Corpus("zh-news", NAMES, CODES, examples, read_transfer(data_dir, examples))


def bundle_splits(data_dir: Path, metrics: dict) -> tuple[list[Example], list[Example], list[Example]]:
    """(train, val, test) of the split a bundle's classifier was trained on, as its manifest's metrics record it:
    hash-assigned over every file (`salt`), or the v2 bundle's shuffle of the three original files (`seed`)."""
    recorded = metrics.get("split", {})
    if "salt" in recorded:
        return assign_splits(read_labelled(data_dir), recorded["salt"])[:3]
    return split(read_corpora(data_dir), seed=recorded.get("seed", 13))
