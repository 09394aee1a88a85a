"""A built bundle's report for reports/: its name, size on disk, recipe, scope and every figure of its manifest
(the validation tables of docs/ are rendered from these).

    python -m edge_rec_export.bundle_report work/bundles/ag_news reports/build-ag-news.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from edge_rec import load_bundle


def size_bytes(bundle_dir: Path) -> int:
    """A bundle's size on disk: its files."""
    return sum(f.stat().st_size for f in Path(bundle_dir).iterdir() if f.is_file())


def bundle_report(bundle_dir: Path) -> dict:
    bundle = load_bundle(bundle_dir)  # every file verified against the manifest
    m = bundle.manifest
    return {"bundle": m["name"], "size_bytes": size_bytes(bundle.path),
            "recipe": m.get("recipe"), "scope": m.get("scope"), "metrics": m["metrics"]}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m edge_rec_export.bundle_report", description=__doc__.split("\n")[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("out", type=Path)
    a = ap.parse_args(argv)
    a.out.write_text(json.dumps(bundle_report(a.bundle), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
