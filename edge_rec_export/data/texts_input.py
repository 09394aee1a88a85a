"""The inputs of `edge-rec-export build`, read and checked row by row; every problem names its file and line.

Labelled texts: JSON lines (`.jsonl`, `.json`, `.ndjson`) or CSV (`.csv`; `.tsv` tab-separated), one text a row:
    text      str, required                         the content (a title, a caption)
    label     str or int, required                  its primary label
    labels    list of str (CSV: "a|b"), optional    secondary labels (tags), e.g. sub-categories of the primary
    keywords  list of str (CSV: "a,b"), optional    keywords; the frequent ones become tags too
    index     number in [0, 1], optional            a category-index target (else estimated from the keywords)
    id        str or int, optional                  the item id a click log refers to
    source    str, optional                         where the text comes from; test figures are also given per source
    public    bool (CSV: true/false), optional      in a fixed public test set: never trained or tuned on, its
                                                    figures reported as a split of their own
Unlabelled texts: the same formats with `text` alone, or plain `.txt`, one text a line.
Click log: JSON lines or CSV with `user`, `item` (an `id` of the labelled texts), `time` (a number, e.g. Unix
seconds) and `event` (impression, click, like, share, hide, dislike, long_view: consumed without a click, e.g. a
film watched and rated low; it joins the user's history and is neither a click nor a skip).
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from edge_rec.items import event_code

JSON_SUFFIXES = (".jsonl", ".json", ".ndjson")
TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t"}
POSITIVE_EVENTS = ("click", "like", "share")  # an interaction that counts as a click
NEGATIVE_EVENTS = ("impression", "hide", "dislike")  # shown, and not clicked (hide/dislike: explicitly not)
VIEWED_EVENTS = ("long_view",)  # consumed without a click: part of the history, never a training negative
EVENTS = POSITIVE_EVENTS + VIEWED_EVENTS + NEGATIVE_EVENTS


class InputError(ValueError):
    """A bad input file or row: the message names the file, the line and what is expected."""


@dataclass
class LabelledText:
    text: str
    label: str
    labels: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    index: float | None = None
    id: str | None = None
    line: int = 0
    source: str | None = None
    public: bool = False


@dataclass
class Event:
    user: str
    item: str
    time: float
    clicked: bool
    viewed: bool = False
    name: str = ""  # the event as the log wrote it; "" for a click (or, where viewed, a long view)

    @property
    def history_code(self) -> int:
        """The event's code as a history event of the ranking models (`edge_rec.items.event_code`); for an event
        that joins the history (a click, like, share or long view)."""
        return event_code(self.name or ("long_view" if self.viewed else "click"))


def rows(path: Path, allow_text_lines: bool = False) -> Iterator[tuple[int, dict]]:
    """(line number, row as a dict) for every non-empty row of a JSON-lines, CSV/TSV (or, where allowed, plain
    text) file."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: a directory; give the file itself (e.g. {path / 'texts.jsonl'})")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            if suffix in JSON_SUFFIXES:
                for n, line in enumerate(f, start=1):
                    if line.strip():
                        try:
                            row = json.loads(line)
                        except json.JSONDecodeError as e:
                            raise InputError(f"{path}:{n}: not valid JSON ({e.msg}); expected one JSON object per line")
                        if not isinstance(row, dict):
                            raise InputError(f"{path}:{n}: expected a JSON object, got {type(row).__name__}")
                        yield n, row
            elif suffix in TABLE_SUFFIXES:
                reader = csv.DictReader(f, delimiter=TABLE_SUFFIXES[suffix])
                for row in reader:
                    if any(v for v in row.values() if isinstance(v, str) and v.strip()):
                        yield reader.line_num, {k: v for k, v in row.items() if k is not None}
            elif suffix == ".txt" and allow_text_lines:
                for n, line in enumerate(f, start=1):
                    if line.strip():
                        yield n, {"text": line.rstrip("\r\n")}
            else:
                kinds = "JSON lines (.jsonl) or CSV (.csv/.tsv)" + (" or plain text (.txt)" if allow_text_lines else "")
                raise InputError(f"{path}: unknown file type {suffix or '(none)'!r}; expected {kinds}")
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text (byte {e.start}); save it as UTF-8")


def _text(path, n, row) -> str:
    text = row.get("text")
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"{path}:{n}: 'text' must be a non-empty string, got {text!r}")
    return text.strip()


def _names(path, n, row, key: str, sep: str) -> list[str]:
    value = row.get(key)
    if value in (None, ""):
        return []
    if isinstance(value, str):
        value = value.split(sep)
    if not isinstance(value, list) or not all(isinstance(v, (str, int)) for v in value):
        raise InputError(f"{path}:{n}: '{key}' must be a list of strings (or a '{sep}'-separated string), got {value!r}")
    return list(dict.fromkeys(str(v).strip() for v in value if str(v).strip()))


def _number(path, n, value, key: str, low: float = -math.inf, high: float = math.inf) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = math.nan
    if isinstance(value, bool) or not low <= x <= high:
        span = "a number" if math.isinf(low) else f"a number in [{low:g}, {high:g}]"
        raise InputError(f"{path}:{n}: '{key}' must be {span}, got {value!r}")
    return x


def _id(path, n, value, key: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        raise InputError(f"{path}:{n}: '{key}' must be a non-empty string or integer, got {value!r}")
    return str(value).strip()


def _flag(path, n, value, key: str) -> bool:
    flags = {"true": True, "false": False, "1": True, "0": False, "": False}
    if isinstance(value, bool) or value is None:
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in flags:
        return flags[value.strip().lower()]
    raise InputError(f"{path}:{n}: '{key}' must be true or false, got {value!r}")


def read_labelled(path: Path) -> list[LabelledText]:
    out, ids = [], {}
    for n, row in rows(path):
        label = _id(path, n, row.get("label"), "label")
        index = row.get("index")
        item = LabelledText(_text(path, n, row), label, _names(path, n, row, "labels", "|"),
                            _names(path, n, row, "keywords", ","),
                            None if index in (None, "") else _number(path, n, index, "index", 0.0, 1.0),
                            None if row.get("id") in (None, "") else _id(path, n, row["id"], "id"), n,
                            None if row.get("source") in (None, "") else _id(path, n, row["source"], "source"),
                            _flag(path, n, row.get("public"), "public"))
        if item.id is not None:
            if item.id in ids:
                raise InputError(f"{path}:{n}: id {item.id!r} is already used on line {ids[item.id]}; ids must be unique")
            ids[item.id] = n
        out.append(item)
    if not out:
        raise InputError(f"{path}: no rows; expected labelled texts with 'text' and 'label'")
    return out


def labelled_by_id(path: Path) -> dict[str, LabelledText]:
    """The labelled texts that have an `id`, by id: the items a click log refers to."""
    return {t.id: t for t in read_labelled(path) if t.id is not None}


def read_unlabelled(path: Path) -> list[str]:
    out = [_text(path, n, row) for n, row in rows(path, allow_text_lines=True)]
    if not out:
        raise InputError(f"{path}: no rows; expected texts")
    return out


def read_events(path: Path, known_items: set[str]) -> list[Event]:
    """The click log, every item checked against `known_items` (the labelled texts' ids)."""
    out = []
    for n, row in rows(path):
        for key in ("user", "item", "time", "event"):
            if row.get(key) in (None, ""):
                raise InputError(f"{path}:{n}: missing '{key}'; a click-log row needs user, item, time and event")
        item = _id(path, n, row["item"], "item")
        if item not in known_items:
            raise InputError(f"{path}:{n}: item {item!r} is not the id of any labelled text; the click log's items "
                             "must be the 'id' values of --texts")
        event = str(row["event"]).strip().lower()
        if event not in EVENTS:
            raise InputError(f"{path}:{n}: unknown event {row['event']!r}; expected one of {', '.join(EVENTS)}")
        out.append(Event(_id(path, n, row["user"], "user"), item, _number(path, n, row["time"], "time"),
                         event in POSITIVE_EVENTS, event in VIEWED_EVENTS, event))
    if not out:
        raise InputError(f"{path}: no rows; expected click-log events")
    return out
