"""The `edge-rec` console script: the CLI (and onnxruntime, numpy, tokenizers with it) is imported inside main, so
Ctrl-C while they load exits with one line and code 130, like Ctrl-C at any later point."""
from __future__ import annotations

import sys


def main() -> int:
    try:
        from edge_rec.cli import main as cli
    except KeyboardInterrupt:
        print("edge-rec: interrupted", file=sys.stderr)
        return 130
    return cli()
