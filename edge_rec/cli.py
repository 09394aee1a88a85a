"""edge-rec command line: a thin layer over the library; library errors become one-line messages (exit 2)."""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

from edge_rec import __version__, bench
from edge_rec.bundle import BundleError, default_bundle_path, load_bundle
from edge_rec.catalogue import VECTOR_FORMATS, classify_catalogue
from edge_rec.classifier import ContentClassifier
from edge_rec.items import Item, as_item
from edge_rec.jsonl import jsonl_records, utf8_lines
from edge_rec.recommender import EdgeRecommender
from edge_rec.resources import shipped
from edge_rec.sessions import PROFILES
from edge_rec.store import EVENTS, Store

EXAMPLES = shipped("examples")  # titles.txt, items.jsonl, user.json: held-out titles (edge_rec_export.data.demo_data)


def _add_bundle_args(p: argparse.ArgumentParser, profile: bool = True) -> None:
    p.add_argument("--bundle", default=None, help=f"bundle directory (default: {default_bundle_path()})")
    _add_trust_arg(p)
    if profile:
        p.add_argument("--profile", default="phone", choices=sorted(PROFILES),
                       help="thread profile: phone = 1 thread, tablet = 2, pc = all cores (default: phone)")


def _add_trust_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trusted-key", action="append", default=None, metavar="PUBFILE",
                   help="a public key (from `edge-rec-export keygen`) one of which must have signed the bundle; "
                   "repeat for several (key rotation)")


def _verify(a) -> int:
    b = load_bundle(a.bundle_path, trusted_keys=a.trusted_key)
    print(json.dumps({"path": str(b.path), "name": b.name, "verified": True, "signed_by": b.signed_by}))
    return 0


def _info(a) -> int:
    b = load_bundle(a.bundle_path, trusted_keys=a.trusted_key)
    m = b.manifest
    sizes = {n: b.file(n).stat().st_size for n in m["files"]}  # `bytes` is optional in the manifest
    recommends = "ranking" in m and {"recall", "ranker"} <= set(m["models"])
    if a.json:
        print(json.dumps({"path": str(b.path), "file_bytes": sizes, **m}, ensure_ascii=False, indent=2))
        return 0
    metrics = b.metrics
    shipped = f"student_{metrics.get('classifier_precision', 'int8')}_onnx"
    lines = [f"bundle {b.name} at {b.path} ({sum(sizes.values()) / 1e6:.1f} MB, format {m['format_version']}"
             + (f", signed by {b.signed_by}" if b.signed_by else "") + ")",
             "can: " + ("classify and recommend" if recommends else
                        "classify only (no recall/ranker models: built without a click log)"),
             f"labels ({len(b.primary_labels)}): {', '.join(b.primary_labels)}",
             f"tags: {len(b.tags)}" + (f" ({', '.join(b.tags[:8])}{', ...' if len(b.tags) > 8 else ''})" if b.tags else ""),
             "models: " + ", ".join(f"{r} ({v.get('ort_file') or v['file']})" for r, v in m["models"].items())]
    if shipped in metrics and "tfidf_reference" in metrics:
        lines.append(f"test accuracy: {metrics[shipped]['accuracy']:.4f} (shipped classifier) vs TF-IDF "
                     f"{metrics['tfidf_reference']['accuracy']:.4f}")
    guarantee = metrics.get("ranking", {}).get("guarantee")
    if guarantee:
        lines.append(f"ranking: ships {guarantee['shipped']}; {guarantee['verdict']}")
    if m.get("scope"):
        lines.append(f"scope: {', '.join(m['scope']['scripts'])} script, {m['scope'].get('domain', '')}")
    if m.get("recipe"):
        lines.append(f"built by: {m['recipe'].get('command')} ({m['recipe'].get('build_seconds')} s)")
    lines.append("the whole manifest: edge-rec info --json")
    print("\n".join(lines))
    return 0


def _classify(a) -> int:
    if bool(a.texts) == bool(a.input) or bool(a.input) != bool(a.output):
        raise ValueError("classify takes TEXT... (or '-' for stdin), or --input FILE with --output FILE")
    # A catalogue has each text once: no result cache (it would only hold memory).
    clf = ContentClassifier(a.bundle, profile=a.profile, tag_threshold=a.threshold,
                            cache_size=0 if a.input else 10_000, trusted_keys=a.trusted_key)
    if a.input:
        progress = _Progress("items") if sys.stderr.isatty() else None
        counts = classify_catalogue(clf, a.input, a.output, a.vector_format, skip_bad=a.skip_bad,
                                    progress=progress.tick if progress else None)
        if progress:
            progress.done()
        print(json.dumps({"output": a.output, **counts}))
        return 0
    if a.texts != ["-"]:
        for text, r in zip(a.texts, clf.classify(a.texts)):
            _print({"text": text, **r.to_dict(with_vector=a.vector)})
        return 0
    # stdin: streamed in input order, one output line per input line (a blank or bad line is an error, or with
    # --skip-bad an error record), flushed chunk by chunk so completed work is never lost.
    lines = utf8_lines(sys.stdin.buffer, "stdin")
    progress = _Progress() if sys.stderr.isatty() else None
    texts: deque[str] = deque()  # read but not yet written: at most one chunk
    stream = clf.classify_stream(_remember(lines, texts), skip_bad=a.skip_bad)
    for n, r in enumerate(_lines_done(stream), start=1):
        text = texts.popleft()
        if isinstance(r, Exception):
            _print({"line": n, "error": str(r).replace(f"text {n - 1} ", "text ", 1)})
        else:
            _print({"text": text, **r.to_dict(with_vector=a.vector)}, flush=not texts)  # at each chunk's end
        if progress:
            progress.tick(n)
    sys.stdout.flush()
    if progress:
        progress.done()
    return 0


def _remember(lines, texts: deque):
    for line in lines:
        texts.append(line)
        yield line


def _lines_done(stream):
    """The stream's results; a bad text (without --skip-bad) ends it with an error naming its line."""
    try:
        yield from stream
    except (ValueError, TypeError) as e:
        sys.stdout.flush()
        msg = str(e)
        if msg.startswith("text "):
            pos, _, rest = msg[5:].partition(" ")
            if pos.isdigit():
                raise ValueError(f"stdin line {int(pos) + 1}: text {rest} (pass --skip-bad to write an error "
                                 "record for it and go on)") from None
        raise


class _Progress:
    """A one-line progress count on stderr, refreshed at most twice a second."""

    def __init__(self, unit: str = "lines"):
        self.unit = unit
        self.start = self.last = time.monotonic()

    def tick(self, n: int) -> None:
        now = time.monotonic()
        if now - self.last >= 0.5:
            self.last = now
            print(f"\r{n:,} {self.unit}, {n / (now - self.start):,.0f}/s", end="", file=sys.stderr, flush=True)

    def done(self) -> None:
        print(file=sys.stderr)


def _print(record: dict, flush: bool = True) -> None:
    print(json.dumps(record, ensure_ascii=False), flush=flush)


def _demo(a) -> int:
    rec = EdgeRecommender(a.bundle, profile=a.profile, trusted_keys=a.trusted_key)
    clf, b = rec.classifier, rec.bundle
    acc = b.metrics.get("student_int8_onnx", {}).get("accuracy")
    print(f"bundle {b.name} ({b.path}); held-out accuracy of this classifier: {acc}\n")
    titles = (EXAMPLES / "titles.txt").read_text(encoding="utf-8").splitlines()
    for text, r in zip(titles, clf.classify(titles)):
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
    tags = [label for label in ("game", "car", b.primary_labels[0]) if label in b.primary_labels][:1]
    print(f"\nthe same user with the account interest tag {tags}: top 5, each with the interest that placed it")
    for r in rec.recommend({**user, "interest_tags": tags}, items, k=5):
        print(f"  R {r.score:.3f}  {r.primary:>13}  for {r.interest:8} {text[r.id]}")
    english = "Stocks rally as tech earnings beat forecasts"
    r = clf.classify(english)[0]
    print(f"\nout of scope: {english!r} -> in_scope={r.in_scope} (script share {r.scope_score:.2f}; "
          f"its label {r.primary!r} is not to be trusted)")
    _demo_session(b, items, text)
    return 0


def _demo_session(bundle, items: list[dict], text: dict) -> None:
    """A store on the device: a new user, two clicks, and the next recommendation reflecting them."""
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "demo.db", bundle) as store:
        store.add(items)
        print(f"\na store session ({len(store)} items in a SQLite file): a new user's top 5")
        before = store.recommend("demo", k=5)
        for r in before:
            print(f"  R {r.score:.3f}  ctr {r.ctr:.3f}  {r.primary:>13}  {text[r.id]}")
        ranked = store.recommend("demo", k=len(store))
        liked = [r for r in ranked if r.primary == ranked[-1].primary][:2]  # two items of a category ranked low
        for r in liked:
            store.record("demo", r.id, "click")
        print(f"clicks on two {liked[0].primary} titles; the next top 5 (clicked items are not shown again):")
        old = {r.id: r for r in ranked}
        for r in store.recommend("demo", k=5):
            print(f"  R {r.score:.3f}  ctr {r.ctr:.3f} (was {old[r.id].ctr:.3f})  {r.primary:>13}  "
                  f"via {'+'.join(r.paths):18} {text[r.id]}")


def _read_json(path, what: str):
    try:
        with open(path, "rb") as f:
            return json.loads(f.read().decode("utf-8-sig"))
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: {what} is not valid UTF-8 ({e.reason} at byte {e.start})") from None
    except (RecursionError, ValueError) as e:  # JSONDecodeError and an integer past the digit limit are ValueErrors
        raise ValueError(f"{path}: {what} is not valid JSON ({str(e)[:120] or 'nested too deeply'})") from None


def _read_jsonl(path) -> list:
    return [record for _, record in jsonl_records(path)]


def _classified_items(clf: ContentClassifier, path) -> list[Item]:
    """The items of a JSON-lines file in file order, texts classified as the file streams in (a chunk at a time,
    with a progress count on a terminal), so only compact results are held, never every text's tokens."""
    items: list[Item] = []
    waiting: deque[int] = deque()  # positions in items of the texts sent to the classifier

    def texts():
        for item in _checked_items(clf, path):
            items.append(item)
            if item.classification is None:
                waiting.append(len(items) - 1)
                yield item.text

    progress = _Progress("items") if sys.stderr.isatty() else None
    for done, r in enumerate(clf.classify_stream(texts()), start=1):
        at = waiting.popleft()
        items[at] = Item(items[at].id, classification=r)
        if progress:
            progress.tick(done)
    if progress:
        progress.done()
    return items


def _recommend(a) -> int:
    user = _read_json(a.user, "the user")
    rec = EdgeRecommender(a.bundle, profile=a.profile, trusted_keys=a.trusted_key)
    items = _classified_items(rec.classifier, a.items)
    if not items:
        raise ValueError(f"{a.items}: no items; expected one {{\"id\", \"text\"}} object per line")
    for r in rec.recommend(user, items, k=a.k):
        print(json.dumps(r.to_dict(), ensure_ascii=False))
    return 0


def _checked_items(clf: ContentClassifier, path):
    """The items of a JSON-lines file as a stream, each checked where a bad one can be named by file:line."""
    for n, record in jsonl_records(path):
        item = as_item(record, f"{path}:{n}")
        if item.text is not None:
            try:
                clf.clean(item.text)
            except (TypeError, ValueError) as e:
                raise type(e)(f"{path}:{n}: id {item.id!r:.60}: {e}") from None
        yield item


READING = ("recommend", "info")  # store actions that open the file read-only (it must exist; it is never written)


def _store(a) -> int:
    """`edge-rec store --db FILE ACTION ...`: one Store call, JSON lines out."""
    if not a.db:
        raise ValueError("store needs --db FILE (the store file), before or after the action")
    with Store(a.db, a.bundle, profile=a.profile, reclassify=a.action == "reclassify",
               read_only=a.action in READING, trusted_keys=a.trusted_key) as store:
        if a.action in ("add", "import"):
            before = len(store)
            try:
                stored = (store.add(_checked_items(store.recommender.classifier, a.items)) if a.action == "add"
                          else store.add_classified(a.catalogue))
            except (ValueError, TypeError) as e:  # the items before the bad line were committed: say so
                raise type(e)(f"{e} (the {len(store) - before} new items before it were added)") from None
            _print({"classified" if a.action == "add" else "imported": stored, "items": len(store)})
        elif a.action == "record":
            # An id given on the command line is text; a stored item may have a numeric id.
            item = int(a.item) if a.item not in store and a.item.lstrip("-").isdigit() else a.item
            store.record(a.user, item, a.event, a.time)
            _print({"user": a.user, "item": item, "event": a.event, "recorded": True})
        elif a.action == "recommend":
            for r in store.recommend(a.user, k=a.k, interest_tags=a.tags or (), exclude_seen=a.exclude_seen):
                _print(r.to_dict(), flush=False)
        elif a.action == "forget":
            _print({"user": a.user, "events_erased": store.forget_user(a.user)})
        elif a.action == "prune":
            _print({"events_dropped": store.prune(None if a.max_age_days is None else a.max_age_days * 86400.0,
                                                  a.max_events)})
        else:  # info, reclassify
            _print(store.info())
    return 0


class _Parser(argparse.ArgumentParser):
    """Bad arguments are one line on stderr, like every other error (`--help` shows the usage)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="edge-rec", description="On-device content classification and recommendation.")
    ap.add_argument("--version", action="version", version=f"edge-rec {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("info", help="show a bundle's manifest summary", description="Show a bundle's manifest summary.")
    p.add_argument("bundle_path", nargs="?", default=None, help="bundle directory (default: the shipped bundle)")
    p.add_argument("--json", action="store_true", help="the whole manifest as JSON (with each file's size)")
    _add_trust_arg(p)
    p.set_defaults(func=_info)
    p = sub.add_parser("verify", help="check a bundle's files and its signature by a trusted key",
                       description="Check every file of a bundle against its manifest and the manifest's signature "
                                   "against the trusted keys; exit 0, or one line and exit 2.")
    p.add_argument("bundle_path", help="bundle directory")
    p.add_argument("--trusted-key", action="append", required=True, metavar="PUBFILE",
                   help="a public key (repeat for several: key rotation)")
    p.set_defaults(func=_verify)
    p = sub.add_parser("classify", help="classify texts, one JSON object per text",
                       description="Classify texts; prints one JSON object per text, in input order.")
    p.add_argument("texts", nargs="*", help="texts to classify, or '-' to read one per line from stdin")
    p.add_argument("--input", help="a catalogue to classify as a stream: items.jsonl or items.parquet (id, text)")
    p.add_argument("--output", help="where --input's rows go: out.jsonl, or out.parquet (a folder of parts); "
                   "re-running skips the ids already there")
    p.add_argument("--vector-format", choices=VECTOR_FORMATS, default="fp32",
                   help="the vector column of --output (default fp32; int8 = codes + a scale per row)")
    _add_bundle_args(p)
    p.add_argument("--threshold", type=float, default=None, help="tag probability threshold (default: the bundle's)")
    p.add_argument("--vector", action="store_true", help="include the semantic vector")
    p.add_argument("--skip-bad", action="store_true",
                   help="with '-': write {line, error} for a bad or blank line and go on; with --input: list it in "
                   "OUTPUT.errors.jsonl and go on (default: stop, exit 2, keeping what was written)")
    p.set_defaults(func=_classify)
    p = sub.add_parser("demo", help="classify real news titles and recommend some to an example user",
                       description="Classify a handful of real held-out news titles, then recommend 5 of 58 "
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
    p = sub.add_parser("store", help="a catalogue and behaviour log on the device (SQLite): add, record, recommend",
                       description="Keep a classified catalogue and a user behaviour log in one SQLite file and "
                                   "recommend from them; every event counts from the next recommendation.")
    p.add_argument("--db", help="the store file (created if missing; also accepted after the action)")
    _add_bundle_args(p)
    actions = p.add_subparsers(dest="action", required=True)
    q = actions.add_parser("add", help="add or update items from a JSON-lines file (classified once)")
    q.add_argument("items", help='items.jsonl: one {"id", "text"} per line, read as a stream')
    q = actions.add_parser("import", help="add the rows of `edge-rec classify --output` without classifying again")
    q.add_argument("catalogue", help="out.jsonl or out.parquet, written with this bundle and a vector format")
    q = actions.add_parser("record", help="record one event of a user on an item")
    q.add_argument("user")
    q.add_argument("item")
    q.add_argument("event", help=f"one of {', '.join(EVENTS)}")
    q.add_argument("--time", type=float, default=None, help="Unix time of the event (default: now)")
    q = actions.add_parser("recommend", help="recommend stored items to a user, one JSON object per line")
    q.add_argument("user")
    q.add_argument("--k", type=int, default=None, help="how many (default: the bundle's)")
    q.add_argument("--tags", nargs="+", default=None, help="the account's interest tags (labels of the bundle)")
    q.add_argument("--exclude-seen", action="store_true", help="also leave out items the user was shown")
    actions.add_parser("info", help="items, users, events and size of the store")
    q = actions.add_parser("forget", help="erase every event of a user")
    q.add_argument("user")
    q = actions.add_parser("prune", help="retention: drop old events")
    q.add_argument("--max-age-days", type=_positive_float("days"), default=None)
    q.add_argument("--max-events", type=_positive_int, default=None, help="keep each user's latest N events")
    actions.add_parser("reclassify", help="classify every stored text again with this bundle (after a bundle change)")
    for action in actions.choices.values():  # `store add items.jsonl --db f` as well as `store --db f add ...`
        action.add_argument("--db", default=argparse.SUPPRESS, help="the store file")
    p.set_defaults(func=_store)
    p = sub.add_parser("bench", help="measure latency on this device",
                       description="Measure classify (batch 1 and 32) and recommend (100 / 1,000 / 10,000 candidates) "
                                   "latency, cold start and peak RSS on this device, with p50/p90/p99.")
    p.add_argument("--bundle", default=None, help=f"bundle directory (default: {default_bundle_path()})")
    p.add_argument("--compare", default=None, help="a second bundle, run interleaved with the first; ratios reported")
    _add_trust_arg(p)
    p.add_argument("--threads", type=_positive_int, nargs="+", default=None,
                   help="thread counts to measure (default: 1, 2 and all cores)")
    p.add_argument("--seconds", type=_positive_float("seconds"), default=1.0,
                   help="time budget per figure (default 1.0)")
    p.add_argument("--json", default=None, help="also write the results, with the machine's details, to this file")
    p.add_argument("--no-cold-start", action="store_true", help="skip the fresh-interpreter cold-start runs")
    p.add_argument("--plot", default=None, help="draw the latency distributions to this PNG (needs matplotlib)")
    p.set_defaults(func=lambda a: bench.main(a))
    return ap


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def _positive_float(unit: str):
    """An argparse type: a finite number > 0, named in `unit` when refused."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not 0 < value < float("inf"):
            raise argparse.ArgumentTypeError(f"expected a number of {unit} > 0, got {text!r}")
        return value
    return parse


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    if isinstance(sys.stdout, io.TextIOWrapper):  # JSON lines in UTF-8 whatever the locale
        sys.stdout.reconfigure(encoding="utf-8")
    try:
        return a.func(a)
    except BrokenPipeError:  # the reader went away (e.g. `| head -1`): what it wanted was written
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        _flush_quietly()
        print("edge-rec: interrupted", file=sys.stderr)
        return 130
    except (BundleError, ValueError, TypeError, OSError, RecursionError, RuntimeError) as e:
        _flush_quietly()
        print(f"edge-rec: error: {_one_line(e)}", file=sys.stderr)
        return 2


def _one_line(e: BaseException) -> str:
    if isinstance(e, OSError) and e.filename is not None:
        return f"{e.filename}: {e.strerror or e}"
    if isinstance(e, RecursionError):
        return "input nested too deeply"
    return " ".join(str(e).split()) or type(e).__name__


def _flush_quietly() -> None:
    try:
        sys.stdout.flush()
    except (BrokenPipeError, OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
