"""The demo's data, drawn from the default bundle's held-out test split (titles no model of the bundle trained on).

    python -m edge_rec_export.data.demo_data --data ../shared/data --out examples

Writes titles.txt (8 titles of 8 categories, for `edge-rec demo` to classify), items.jsonl (up to 4 candidates per
category: 58) and user.json (a user who clicked 4 sports and 3 car titles, no account tags). Deterministic: the split
is hash-assigned and titles are taken in file order.
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from edge_rec_export.data.corpus import assign_splits
from edge_rec_export.data.news_data import NAMES, read_labelled

DEMO_CATEGORIES = ("agriculture", "game", "car", "sports", "finance", "edu", "military", "culture")


def demo_data(data_dir: Path, salt: str = "13") -> tuple[list[str], list[dict], dict]:
    test = [e for e in assign_splits(read_labelled(data_dir), salt)[2] if e.source == "toutiao" and len(e.title) >= 8]
    by = defaultdict(list)
    for e in test:
        by[NAMES[e.label]].append(e.title)
    titles = [by[c][0] for c in DEMO_CATEGORIES]
    candidates = [t for name in NAMES for t in by[name][1:5]]
    items = [{"id": f"n{i + 1:03d}", "text": t} for i, t in enumerate(candidates)]
    history = by["sports"][5:9] + by["car"][5:8]
    user = {"id": "demo-user", "interest_tags": [],
            "history": [{"id": f"h{i + 1}", "text": t} for i, t in enumerate(history)]}
    return titles, items, user


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m edge_rec_export.data.demo_data", description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path("examples"))
    a = ap.parse_args(argv)
    titles, items, user = demo_data(a.data)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "titles.txt").write_text("\n".join(titles) + "\n", encoding="utf-8")
    (a.out / "items.jsonl").write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items),
                                       encoding="utf-8")
    (a.out / "user.json").write_text(json.dumps(user, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(titles)} titles, {len(items)} items and a user with {len(user['history'])} clicks to {a.out}")


if __name__ == "__main__":
    main()
