"""The build's plan: each step with an estimated time, from the corpus size and a probe of this machine (one encoder
layer of the teacher's size, one ranking-model batch and one EASE^R-sized inverse, timed here in about a second),
then after each step the time left for the whole build, the estimates of the steps still to run scaled by how the
finished ones compared with theirs. The estimates and the actual times go into the manifest's recipe (`plan`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

# Seconds of a step per second of the probe's matching operation: the heads, the optimizer, data loading and
# evaluation that the probe leaves out. Set from the default zh-news build with the teacher's top 4 and top 8 layers
# trained (length-bucketed batches, bf16, 2 cores, against a probe of the quiet machine: cache 1.19 and 1.29, teacher
# 3.01 and 2.78, distillation 2.76 and 2.54 its layer work; the ranking models' batches 0.87 the probe's), each
# manifest's recipe.plan keeping estimate beside actual.
OVERHEAD = {"cache": 1.2, "teacher": 2.9, "distill": 2.7, "chars": 1.0, "bundle": 1.0, "ranking": 1.0}
CHARS_SECONDS_PER_TEXT = 0.0006  # the character part: a LinearSVC grid on hashed TF-IDF (linear in the texts)
# Seconds a step costs whatever the corpus (loading the teacher file, building the model and its optimizer, the
# held-out report): --quick builds of AG News and MovieLens took 13 s and 6 s to fine-tune a teacher whose layer work
# the probe put at 1-2 s.
FIXED_SECONDS = {"teacher": 8.0, "distill": 3.0}
# Export, parity check, INT8 calibration, latency and scope figures, and every held-out split through the graphs,
# the yardstick and the refit: 16-29 s for --quick builds, 46-50 s for AG News's 7,559 titles, 187 s for the
# default's 86,069.
BUNDLE_SECONDS, BUNDLE_SECONDS_PER_TEXT = 30.0, 0.0019
RANKING_ROWS_PER_EVENT = 1.5  # training rows (click + sampled skips) per click-log event, before the log is read
RANKING_BATCH = 512
RANKING_MODELS = 3  # DSSM, CTR teacher, CTR student
# Epochs a ranking model trains before validation stops it (patience 2): 4-6 on the default zh-news log, 8-11 on
# MovieLens, of the recipe's 20 at most; one that trains them all takes 2.5x its share of the estimate.
RANKING_EPOCHS_RUN = 8
INVERSE_PROBE_ITEMS = 2000
FAMILY = {"ranking": "ranking"}  # steps timed by the ranking probe; the others by the encoder probe


@dataclass
class Probe:
    forward: float  # seconds per text through one encoder layer, forward (fp32, as the cache and evaluation run)
    train: float  # forward + backward, as training runs it
    step_forward: float  # forward without gradients inside a training step (the teacher's passes in distillation)
    ranking: float  # seconds per ranking-model training batch
    inverse: float  # seconds to invert an INVERSE_PROBE_ITEMS-square SPD matrix, as the EASE^R baselines do
    threads: int  # torch's

    @classmethod
    def measure(cls, hidden: int, heads: int, ff: int, tokens: int, history: int = 50, bf16: bool = False
                ) -> "Probe":
        """`bf16`: the training steps as the build runs them, under bf16 autocast (the cache and the evaluation
        passes stay fp32)."""
        import torch

        from edge_rec_export.models.ctr import CTRConfig, CTRModel
        from edge_rec_export.models.encoder import EncoderConfig, Layer

        torch.manual_seed(0)
        layer = Layer(EncoderConfig(vocab_size=8, hidden=hidden, heads=heads, ff=ff, layers=1))
        x, bias = torch.randn(32, max(tokens, 1), hidden), torch.zeros(32, 1, 1, max(tokens, 1))
        amp = lambda: torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)  # noqa: E731
        with torch.no_grad():
            forward = _best(lambda: layer(x, bias)) / 32
            with amp():
                step_forward = _best(lambda: layer(x, bias)) / 32
        with amp():
            train = _best(lambda: layer(x.requires_grad_(), bias).float().sum().backward()) / 32
        ctr = CTRModel(CTRConfig(n_labels=64, history_length=history, n_items=1000, popularity=True))
        n = RANKING_BATCH
        feeds = {"hist_labels": torch.randint(0, 64, (n, history, 4)), "hist_index": torch.rand(n, history),
                 "hist_mask": torch.ones(n, history), "hist_item": torch.randint(0, 1000, (n, history)),
                 "cand_labels": torch.randint(0, 64, (n, 4)), "cand_index": torch.rand(n),
                 "cand_item": torch.randint(0, 1000, (n,)), "cand_pop": torch.rand(n)}
        ranking = _best(lambda: ctr.logits(**feeds).sum().backward(), repeats=2)
        from edge_rec_export.training.ranking_baselines import spd_inverse

        g = np.random.default_rng(0).random((INVERSE_PROBE_ITEMS, INVERSE_PROBE_ITEMS))
        g = g @ g.T + INVERSE_PROBE_ITEMS * np.eye(INVERSE_PROBE_ITEMS)
        inverse = _best(lambda: spd_inverse(g), repeats=2)
        return cls(forward, train, step_forward, ranking, inverse, torch.get_num_threads())


def _best(run, repeats: int = 3) -> float:
    """The fastest of `repeats` timed runs after one warm-up (the least disturbed by other work)."""
    run()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return min(times)


@dataclass
class Plan:
    probe: Probe
    estimates: dict[str, float]  # step -> seconds, in build order
    actual: dict[str, float] = field(default_factory=dict)

    @classmethod
    def make(cls, probe: Probe, *, n_train: int, n_val: int, n_test: int, n_transfer: int, teacher_layers: int,
             top: int, teacher_epochs: int, student_layers: int, distill_epochs: int, events: int,
             ranking_epochs: int, epoch_rows: int | None = None, items: int = 0) -> "Plan":
        """`events`, `items`: the click log's events and distinct items (none: no ranking step)."""
        f, b = probe.forward, probe.train
        frozen = teacher_layers - top
        n_all = n_train + n_val + n_test + n_transfer
        est = {
            "cache": n_all * frozen * f,
            "teacher": teacher_epochs * (n_train * top * b + n_val * top * f),
            "distill": distill_epochs * ((n_train + n_transfer) * (top * probe.step_forward + student_layers * b)
                                         + n_val * student_layers * f),
            "chars": n_train * CHARS_SECONDS_PER_TEXT,
            "bundle": BUNDLE_SECONDS + BUNDLE_SECONDS_PER_TEXT * (n_train + n_val + n_test),
        }
        est = {k: v * OVERHEAD[k] + FIXED_SECONDS.get(k, 0.0) for k, v in est.items()}
        if events:
            est["ranking"] = ranking_seconds(probe, events * RANKING_ROWS_PER_EVENT, ranking_epochs, epoch_rows, items)
        return cls(probe, est)

    def finished(self, step: str, seconds: float) -> None:
        self.actual[step] = seconds

    def skip(self, step: str) -> None:
        """A step an earlier run of the build finished: out of the plan."""
        self.estimates.pop(step, None)

    def revise(self, step: str, seconds: float) -> None:
        """A better estimate of a step not yet run (the ranking step once its log is read)."""
        self.estimates[step] = seconds

    def left(self) -> float:
        """Seconds left: the estimates of the steps not yet finished, each scaled by actual / estimated of the
        finished steps of its family (the classifier's steps share one probe, the ranking models another)."""
        left = 0.0
        for family in {FAMILY.get(s, "classifier") for s in self.estimates}:
            steps = [s for s in self.estimates if FAMILY.get(s, "classifier") == family]
            done = [s for s in steps if s in self.actual]
            est_done = sum(self.estimates[s] for s in done)
            scale = sum(self.actual[s] for s in done) / est_done if est_done > 0 else 1.0
            left += scale * sum(self.estimates[s] for s in steps if s not in self.actual)
        return left

    def lines(self) -> list[str]:
        total = sum(self.estimates.values())
        return [f"   {step:<10} ~{clock(seconds)}" for step, seconds in self.estimates.items()] + [
            f"   {'total':<10} ~{clock(total)} (the ranking models stop when validation stops improving: their "
            f"estimate is for {RANKING_EPOCHS_RUN} epochs each)" if "ranking" in self.estimates
            else f"   {'total':<10} ~{clock(total)}"]

    def to_dict(self) -> dict:
        return {step: {"estimated_s": round(v), "actual_s": round(self.actual[step]) if step in self.actual else None}
                for step, v in self.estimates.items()}


def ranking_seconds(probe: Probe, rows: float, epochs: int, epoch_rows: int | None = None, items: int = 0) -> float:
    """The three ranking models over `rows` training rows (`epoch_rows` of them an epoch at most), RANKING_EPOCHS_RUN
    epochs each (`epochs` if fewer), then the baselines on a catalogue of `items`: EASE^R's inverses, where it
    runs, are most of their time (17,145 items: 400 of the step's 816 s)."""
    from edge_rec_export.training.ranking_baselines import EASE_MAX_ITEMS, MODELS

    rows = min(rows, epoch_rows or rows)
    models = rows / RANKING_BATCH * probe.ranking * min(epochs, RANKING_EPOCHS_RUN) * RANKING_MODELS
    inverses = sum(len(grid) for name, (_, grid, _) in MODELS.items() if name.startswith("ease"))  # one a knob
    ease = inverses * probe.inverse * (items / INVERSE_PROBE_ITEMS) ** 3 if items <= EASE_MAX_ITEMS else 0.0
    return (models + ease) * OVERHEAD["ranking"]


def clock(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"
