"""Training side of edge-rec, in layers, each importing only from those before it:

    models/    torch models, one per file with its config (encoder, classifier, wide parts, DSSM, CTR, ...)
    data/      corpora and the builder's input formats, click logs, the teacher file and tokenizer
    training/  training loops and distillation, the baselines (TF-IDF, popularity, item-kNN, EASE, ALS), metrics
    bundle/    ONNX export with parity checks, INT8, ORT format, packaging into a bundle with its figures
    build.py, build_default.py, cli.py   the commands on top (`edge-rec-export build`)

One import goes upward: training/train_semantic.py measures a packaged semantic branch (bundle/semantic_branch.py).
Everything here may import torch; nothing in `edge_rec/` may import from here: only the bundle crosses.
"""
