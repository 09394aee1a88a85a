"""Is a text within the bundle's scope? The script share of the text together with the model's own confidence.

A bundle declares its scope in the manifest (`scope`: languages, domain, scripts, and two thresholds set on
held-out in-scope text at export). A text is in scope when
  - its script share (units in the bundle's scripts / all letter units) is at least `min_script_share`, where a
    unit is one CJK character or one run of other letters (a word), so "iPhone X发布" is 2 Han units of 4; and
  - the classifier's primary probability is at least `min_primary_prob`.
The first catches other languages (an English title has no Han units); the second, text the model cannot place.
A bundle that declares no scope flags nothing.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

# Unicode blocks per script name; "Han" covers the CJK ideographs (unified, extension A, compatibility).
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_UNITS = re.compile(f"[{_CJK}]|[^\\W\\d_{_CJK}]+")
SCRIPTS = {"Han": lambda u: len(u) == 1 and _is_cjk(u),
           "Latin": lambda u: all(ord(ch) < 0x250 for ch in u)}


def _is_cjk(ch: str) -> bool:
    o = ord(ch)
    return 0x3400 <= o <= 0x4DBF or 0x4E00 <= o <= 0x9FFF or 0xF900 <= o <= 0xFAFF


def letter_units(text: str) -> list[str]:
    """The text's letter units: each CJK character, and each run of other letters (a word)."""
    return _UNITS.findall(text)


def script_share(text: str, scripts: tuple[str, ...]) -> float:
    """Share of the text's letter units written in `scripts`; 0.0 for a text with no letters at all."""
    units = letter_units(text)
    if not units:
        return 0.0
    tests = [SCRIPTS[s] for s in scripts]
    return sum(1 for u in units if any(t(u) for t in tests)) / len(units)


@dataclass(frozen=True)
class Scope:
    scripts: tuple[str, ...]
    min_script_share: float
    min_primary_prob: float

    @classmethod
    def from_manifest(cls, section: dict | None) -> "Scope | None":
        """The manifest's `scope` section (already checked by the loader), or None when the bundle declares none."""
        if not section:
            return None
        return cls(tuple(section["scripts"]), float(section["min_script_share"]), float(section["min_primary_prob"]))

    def judge(self, text: str, primary_prob: float) -> tuple[bool, float]:
        """(in scope?, script share)."""
        share = script_share(text, self.scripts)
        return share >= self.min_script_share and primary_prob >= self.min_primary_prob, share
