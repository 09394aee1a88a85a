"""JSON-lines input read as a stream, with errors that name the file and line."""
from __future__ import annotations

import json
from typing import Iterator


def utf8_lines(stream, name: str) -> Iterator[str]:
    """Lines of a byte stream decoded as UTF-8 whatever the locale (a leading BOM is dropped), without their end;
    ValueError naming the line that is not UTF-8."""
    for n, raw in enumerate(stream, start=1):
        try:
            line = raw.decode("utf-8-sig" if n == 1 else "utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"{name} line {n}: not valid UTF-8 ({e.reason} at byte {e.start})") from None
        yield line.rstrip("\r\n")


def jsonl_records(path) -> Iterator[tuple[int, object]]:
    """(line number, JSON value) per non-blank line of a JSON-lines file, read as a stream."""
    with open(path, "rb") as f:
        for n, line in enumerate(utf8_lines(f, str(path)), start=1):
            if line.strip():
                try:
                    yield n, json.loads(line)
                except (RecursionError, ValueError) as e:
                    raise ValueError(f"{path}:{n}: not a JSON object ({str(e)[:120] or 'nested too deeply'})") from None
