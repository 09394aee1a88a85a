"""JSON-lines input read as a stream, with errors that name the file and line."""
from __future__ import annotations

import json
from typing import Iterator


def utf8_lines(stream, name: str) -> Iterator[str]:
    """Lines of a byte stream decoded as UTF-8 whatever the locale (a leading BOM is dropped), without their end;
    ValueError naming the line that is not UTF-8."""
    for line in utf8_lines_or_bad(stream, name):
        if isinstance(line, BadLine):
            raise ValueError(str(line))
        yield line


class BadLine(ValueError):
    """A line that is not UTF-8 or not JSON, yielded in its place where the reader goes on past bad lines."""


def utf8_lines_or_bad(stream, name: str) -> Iterator[str | BadLine]:
    """As utf8_lines, but a line that is not UTF-8 comes as a BadLine and reading goes on."""
    for n, raw in enumerate(stream, start=1):
        try:
            yield raw.decode("utf-8-sig" if n == 1 else "utf-8").rstrip("\r\n")
        except UnicodeDecodeError as e:
            yield BadLine(f"{name} line {n}: not valid UTF-8 ({e.reason} at byte {e.start})")


def jsonl_records(path, keep_going: bool = False) -> Iterator[tuple[int, object]]:
    """(line number, JSON value) per non-blank line of a JSON-lines file, read as a stream. A line that is not
    UTF-8 or not JSON raises a ValueError naming it, or with `keep_going` comes as a BadLine value in its place."""
    with open(path, "rb") as f:
        for n, line in enumerate(utf8_lines_or_bad(f, str(path)), start=1):
            if isinstance(line, BadLine):
                if not keep_going:
                    raise ValueError(str(line))
                yield n, line
            elif line.strip():
                try:
                    yield n, json.loads(line)
                except (RecursionError, ValueError) as e:
                    bad = BadLine(f"{path}:{n}: not a JSON object ({str(e)[:120] or 'nested too deeply'})")
                    if not keep_going:
                        raise bad from None
                    yield n, bad
