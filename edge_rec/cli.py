"""edge-rec command line: a thin layer over the library; library errors become one-line messages (exit 2)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edge_rec import __version__
from edge_rec.bundle import BundleError, default_bundle_path, load_bundle
from edge_rec.classifier import ContentClassifier
from edge_rec.recommender import EdgeRecommender
from edge_rec.resources import shipped
from edge_rec.sessions import PROFILES

EXAMPLES = shipped("examples")  # user.json + items.jsonl
# Real titles from the held-out test split of the Toutiao/TNEWS corpora (never seen in training).
DEMO_TITLES = [
    "山东推出《山东省乡村振兴战略规划2018-2022年》打造齐鲁样板",
    "第五人格：漂亮新娘监管者即将到来，光这造型就值得氪金",
    "18款帝豪GL是买1.8L的还是1.4T的？",
    "上港1:3不敌鹿岛鹿角，是运气不好，还是心态不好？",
    "EA公布2018财年财报：营收51.5亿美元，同比增6.2%",
    "关注｜考生注意！倒计时一个月 今年高考有这些新变化！",
    "歼20换装太行WS15发动机后，会取消机尾腹鳍吗？",
    "《西游记》照妖镜照住牛魔王，为何照不住孙悟空？",
]


def _add_bundle_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bundle", default=None, help=f"bundle directory (default: {default_bundle_path()})")
    p.add_argument("--profile", default="phone", choices=sorted(PROFILES),
                   help="thread profile: phone = 1 thread, tablet = 2, pc = all cores (default: phone)")


def _info(a) -> int:
    b = load_bundle(a.bundle_path)
    m = b.manifest
    print(json.dumps({"path": str(b.path), "name": b.name, "format_version": m["format_version"],
                      "created_by": m.get("created_by"), "models": {r: v["file"] for r, v in m["models"].items()},
                      "files": {n: f["bytes"] for n, f in m["files"].items()},
                      "bytes_total": sum(f["bytes"] for f in m["files"].values()),
                      "primary_labels": b.primary_labels, "tags": b.tags, "tokenizer": b.tokenizer,
                      "pipeline": b.pipeline, "metrics": b.metrics}, ensure_ascii=False, indent=2))
    return 0


def _classify(a) -> int:
    texts = a.texts
    if texts == ["-"]:
        texts = [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not texts:
        raise ValueError("no texts given: pass them as arguments, or '-' to read one per line from stdin")
    clf = ContentClassifier(a.bundle, profile=a.profile, tag_threshold=a.threshold)
    for text, r in zip(texts, clf.classify(texts)):
        print(json.dumps({"text": text, **r.to_dict(with_vector=a.vector)}, ensure_ascii=False))
    return 0


def _demo(a) -> int:
    rec = EdgeRecommender(a.bundle, profile=a.profile)
    clf, b = rec.classifier, rec.bundle
    acc = b.metrics.get("student_int8_onnx", {}).get("accuracy")
    print(f"bundle {b.name} ({b.path}); held-out accuracy of this classifier: {acc}\n")
    for text, r in zip(DEMO_TITLES, clf.classify(DEMO_TITLES)):
        tags = ", ".join(f"{t} {p:.2f}" for t, p in r.tags) or "-"
        print(f"{r.primary:>13} {r.primary_prob:.2f}  index {r.index:.2f}  tags [{tags}]  {text}")
    user, items = _read_json(EXAMPLES / "user.json", "the user"), _read_jsonl(EXAMPLES / "items.jsonl")
    text = {it["id"]: it["text"] for it in items}
    print(f"\nuser with {len(user['history'])} clicked titles (no account tags), for example: "
          f"{user['history'][0]['text']}")
    print(f"top 5 of {len(items)} real held-out titles (R = lam * ctr + (1 - lam) * index):")
    for r in rec.recommend(user, items, k=5):
        print(f"  R {r.score:.3f}  ctr {r.ctr:.3f}  index {r.index:.2f}  {r.primary:>13}  via {'+'.join(r.paths):18} "
              f"{text[r.id]}")
    return 0


def _read_json(path, what: str):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: {what} is not valid JSON ({e})") from None


def _read_jsonl(path) -> list:
    items = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if line.strip():
                try:
                    items.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{n}: not a JSON object ({e})") from None
    return items


def _recommend(a) -> int:
    user = _read_json(a.user, "the user")
    items = _read_jsonl(a.items)
    rec = EdgeRecommender(a.bundle, profile=a.profile)
    for r in rec.recommend(user, items, k=a.k):
        print(json.dumps(r.to_dict(), ensure_ascii=False))
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="edge-rec", description="On-device content classification and recommendation.")
    ap.add_argument("--version", action="version", version=f"edge-rec {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("info", help="show a bundle's manifest summary", description="Show a bundle's manifest summary.")
    p.add_argument("bundle_path", nargs="?", default=None, help="bundle directory (default: the shipped bundle)")
    p.set_defaults(func=_info)
    p = sub.add_parser("classify", help="classify texts, one JSON object per text",
                       description="Classify texts; prints one JSON object per text, in input order.")
    p.add_argument("texts", nargs="+", help="texts to classify, or '-' to read one per line from stdin")
    _add_bundle_args(p)
    p.add_argument("--threshold", type=float, default=None, help="tag probability threshold (default: the bundle's)")
    p.add_argument("--vector", action="store_true", help="include the semantic vector")
    p.set_defaults(func=_classify)
    p = sub.add_parser("demo", help="classify real news titles and recommend some to an example user",
                       description="Classify a handful of real held-out news titles, then recommend 5 of 60 "
                                   "(examples/items.jsonl) to the user in examples/user.json.")
    _add_bundle_args(p)
    p.set_defaults(func=_demo)
    p = sub.add_parser("recommend", help="recommend items to a user, one JSON object per recommendation",
                       description="Recommend items to a user: classify, recall (model + tag match), rank by CTR and "
                                   "category index; prints one JSON object per recommendation, best first.")
    p.add_argument("--user", required=True,
                   help='user.json: {"id", "interest_tags": [...], "history": [{"id", "text"}, ...]}')
    p.add_argument("--items", required=True, help='items.jsonl: one {"id", "text"} per line')
    p.add_argument("--k", type=int, default=None, help="how many to return (default: the bundle's)")
    _add_bundle_args(p)
    p.set_defaults(func=_recommend)
    return ap


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    try:
        return a.func(a)
    except (BundleError, ValueError, TypeError, FileNotFoundError) as e:
        print(f"edge-rec: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
