"""Classifier latency: one median title and a batch of 32 real titles, per variant and thread count.

Each call runs the whole path a user runs (tokenize, pad, model, post-process) with the cache off.
"""
import platform

import onnxruntime as ort
import pytest

from conftest import WORK, cpu_info, percentiles
from variants import VARIANTS, build

_built = {}


@pytest.fixture(scope="session")
def runner(tmp_path_factory):
    def get(variant, threads):
        key = (variant, threads)
        if key not in _built:
            _built[key] = build(variant, threads, WORK, tmp_path_factory.mktemp(variant))
        fn, reason = _built[key]
        if fn is None:
            pytest.skip(reason)
        return fn
    return get


@pytest.mark.parametrize("batch", [1, 32])
@pytest.mark.parametrize("threads", [1, 2], ids=["phone-1t", "pc-2t"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_classify(benchmark, runner, titles, median_title, variant, threads, batch):
    fn = runner(variant, threads)
    texts = [median_title] if batch == 1 else titles[:32]
    benchmark.group = f"classify batch={batch}"
    benchmark.extra_info.update({"variant": variant, "threads": threads, "batch": batch,
                                 "onnxruntime": ort.__version__, "python": platform.python_version(),
                                 **cpu_info()})
    rounds = 200 if batch == 1 else 30
    if variant == "teacher-fp32-torch":
        rounds //= 4
    benchmark.pedantic(fn, args=(texts,), rounds=rounds, iterations=1, warmup_rounds=10)
    percentiles(benchmark)
