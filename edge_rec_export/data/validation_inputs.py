"""The builder's inputs written from ../shared/data in `edge-rec-export build`'s formats: the shipped default
bundle's, and validation sets that no default was tuned on, each in another language, taxonomy or medium.

    python -m edge_rec_export.data.validation_inputs --data ../shared/data --out work/byo
    edge-rec-export build --texts work/byo/ag_news/texts.jsonl --out bundles/ag-news        # and so on per set

zh_news   the default bundle assets/zh-news: Toutiao/TNEWS titles, 15 categories, keywords, sources and FewCLUE's
          public test set (texts), the transfer set (unlabelled), AG News titles as out-of-scope text
          (ag_news_english, for --out-of-scope) and the simulated click log (clicks; user_simulator.py)

zh_news_29k  29,000 of zh_news's labelled titles, to time a full build of a user's size

ag_news   English news titles, 4 classes (AG News test split; 7,600 titles)
thucnews  Chinese news titles, another taxonomy of 10 classes (THUCNews dev + test; 20,000 titles), and FewCLUE's
          19,224 unlabelled news titles as the transfer set (unlabelled.jsonl, for --unlabelled)
kuairec   Chinese short-video captions, first-level category as label, second-level as secondary label
mind      English news (MIND slice): category as label, subcategory as secondary label, and its impression log as
          the click log (history clicks at the user's first visit time, then each impression's clicks and skips)
movielens movie titles, first genre as label, the others as secondary labels, and the ratings as the click log
          (rating >= 4 a click, a lower one a long_view: watched, part of the history, not a skip). Reads either
          release layout in `--data` itself or in its movielens_100k/: ml-100k (u.item, u.data) or
          ml-latest / ml-latest-small (movies.csv, ratings.csv), so a second release needs no code
"""
from __future__ import annotations

import argparse
import csv
import json
from datetime import datetime
from pathlib import Path

AG_NEWS_LABELS = {"1": "world", "2": "sports", "3": "business", "4": "sci/tech"}


def ag_news(data: Path):
    with open(data / "ag_news_test" / "test.csv", encoding="utf-8", newline="") as f:
        for i, row in enumerate(csv.DictReader(f)):
            yield "texts", {"id": f"ag{i}", "text": row["title"], "label": AG_NEWS_LABELS[row["label"]]}


def thucnews(data: Path):
    root = data / "thucnews_titles_devtest"
    names = (root / "class.txt").read_text(encoding="utf-8").split()
    for part in ("dev", "test"):
        for i, line in enumerate((root / f"{part}.txt").read_text(encoding="utf-8").splitlines()):
            title, _, label = line.rpartition("\t")
            if title.strip():
                yield "texts", {"id": f"{part}{i}", "text": title, "label": names[int(label)]}
    # A transfer set for the distillation: FewCLUE's unlabelled news titles (another source and taxonomy).
    with open(data / "fewclue_tnews" / "unlabeled.json", encoding="utf-8") as f:
        for line in f:
            text = json.loads(line)["sentence"].strip() if line.strip() else ""
            if text:
                yield "unlabelled", {"text": text}


def kuairec(data: Path):
    with open(data / "kuairec_captions" / "kuairec_caption_category.csv", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            label, sub = row["first_level_category_name"], row["second_level_category_name"]
            if not (row["video_id"] or "").strip().isdigit():  # a few rows of the file are broken by stray quotes
                continue
            if row["caption"].strip() and label not in (None, "", "UNKNOWN"):
                yield "texts", {"id": row["video_id"], "text": row["caption"].strip(), "label": label,
                       "labels": [sub] if sub not in (None, "", "UNKNOWN") else []}


def mind(data: Path):
    root = data / "mind_subset"
    known = set()
    for line in (root / "news.tsv").read_text(encoding="utf-8").splitlines():
        f = line.split("\t")
        known.add(f[0])
        yield "texts", {"id": f[0], "text": f[3], "label": f[1], "labels": [f[2]]}
    first_seen: dict[str, int] = {}
    rows = []
    for line in (root / "behaviors.tsv").read_text(encoding="utf-8").splitlines():
        _, user, when, history, impressions = line.split("\t")
        t = int(datetime.strptime(when, "%m/%d/%Y %I:%M:%S %p").timestamp())
        first_seen[user] = min(t, first_seen.get(user, t))
        rows.append((user, t, history.split(), impressions.split()))
    clicked_history = set()
    for user, t, history, impressions in rows:
        if user not in clicked_history:  # a user's history clicks come before their first logged visit
            clicked_history.add(user)
            for item in history:
                if item in known:
                    yield "clicks", {"user": user, "item": item, "time": first_seen[user] - 1, "event": "click"}
        for imp in impressions:
            item, _, flag = imp.rpartition("-")
            if item in known:
                event = "click" if flag == "1" else "impression"
                yield "clicks", {"user": user, "item": item, "time": t, "event": event}


def movielens(data: Path):
    root = data if (data / "ratings.csv").exists() or (data / "u.data").exists() else data / "movielens_100k"
    if (root / "ratings.csv").exists():  # ml-latest(-small): movieId,title,genres ("A|B") / userId,movieId,rating,ts
        with open(root / "movies.csv", encoding="utf-8", newline="") as f:
            movies = [(r["movieId"], r["title"], r["genres"].split("|")) for r in csv.DictReader(f)]
        with open(root / "ratings.csv", encoding="utf-8", newline="") as f:
            ratings = [(r["userId"], r["movieId"], float(r["rating"]), r["timestamp"]) for r in csv.DictReader(f)]
    else:  # ml-100k: id|title|date|video date|url|19 genre flags in u.genre's order / user\titem\trating\ttime
        genres = [line.split("|")[0] for line in (root / "u.genre").read_text(encoding="latin-1").splitlines()
                  if line.strip()]
        movies = [(f[0], f[1], [g for g, on in zip(genres, f[5:]) if on == "1"])
                  for f in (line.split("|") for line in (root / "u.item").read_text(encoding="latin-1").splitlines())
                  if len(f) > 5]
        ratings = [(f[0], f[1], float(f[2]), f[3]) for f in (line.split("\t") for line in
                   (root / "u.data").read_text(encoding="latin-1").splitlines()) if len(f) == 4]
    for movie, title, names in movies:
        names = [g for g in names if g not in ("", "(no genres listed)")] or ["unknown"]
        yield "texts", {"id": movie, "text": title, "label": names[0], "labels": names[1:]}
    for user, movie, rating, when in ratings:
        event = "click" if rating >= 4 else "long_view"
        yield "clicks", {"user": user, "item": movie, "time": int(when), "event": event}


def zh_news(data: Path):
    """The shipped default bundle's inputs, so that it is one run of the builder: every labelled Toutiao/TNEWS title
    (de-duplicated, keywords merged, FewCLUE's test_public marked public), the transfer set, AG News's English
    titles as out-of-scope text, and the simulated click log over the held-out titles."""
    from edge_rec_export.bundle.scope_calibration import english_titles
    from edge_rec_export.data import news_data, user_simulator

    examples = news_data.read_labelled(data)
    for i, e in enumerate(examples):
        yield "texts", {"id": f"n{i}", "text": e.title, "label": news_data.NAMES[e.label], "keywords": e.keywords,
                        "source": e.source, **({"public": True} if e.public else {})}
    for text in news_data.read_transfer(data, examples):
        yield "unlabelled", {"text": text}
    for text in english_titles(data):
        yield "ag_news_english", {"text": text}
    for row in user_simulator.click_events(examples):
        yield "clicks", {**row, "user": f"u{row['user']}", "item": f"n{row['item']}"}


def zh_news_29k(data: Path):
    """29,000 of the default bundle's labelled titles (shuffled with seed 0; no public test set): a full build of
    the size a user brings, to time the builder."""
    import random

    rows = [row for kind, row in zh_news(data) if kind == "texts"]
    random.Random(0).shuffle(rows)
    for row in rows[:29000]:
        row.pop("public", None)
        yield "texts", row


SETS = {"zh_news": zh_news, "zh_news_29k": zh_news_29k, "ag_news": ag_news, "thucnews": thucnews, "kuairec": kuairec, "mind": mind, "movielens": movielens}


def write(data: Path, out: Path, names=tuple(SETS)) -> dict[str, dict[str, int]]:
    """Each set's rows into out/<set>/<kind>.jsonl (texts, and where the set has them unlabelled, clicks,
    ag_news_english); returns the row counts. A set's files appear together once all are written, so an
    interrupted run leaves no partial file behind for a build to read."""
    counts = {}
    for name in names:
        (out / name).mkdir(parents=True, exist_ok=True)
        n: dict[str, int] = {}
        files = {}
        try:
            for kind, row in SETS[name](data):
                if kind not in files:
                    files[kind] = open(out / name / f"{kind}.jsonl.part", "w", encoding="utf-8")
                files[kind].write(json.dumps(row, ensure_ascii=False) + "\n")
                n[kind] = n.get(kind, 0) + 1
        finally:
            for f in files.values():
                f.close()
        for kind in files:
            (out / name / f"{kind}.jsonl.part").replace(out / name / f"{kind}.jsonl")
        counts[name] = n
    return counts


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m edge_rec_export.data.validation_inputs", description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path("work/byo"))
    ap.add_argument("--sets", default=",".join(SETS), help=f"comma-separated, of {', '.join(SETS)}")
    a = ap.parse_args(argv)
    print(json.dumps(write(a.data, a.out, a.sets.split(",")), indent=1))


if __name__ == "__main__":
    main()
