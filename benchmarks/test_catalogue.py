"""The catalogue job at size: `edge-rec classify --input items.jsonl --output out.parquet` (peak RSS of the process
and titles/s; N items from $EDGE_REC_CATALOGUE_LINES, default 20,000; the target is <= 400 MB per worker whatever
the input size), and the same step on Ray Data with 1 and 2 workers (titles/s; needs the `ray` extra)."""
import json
import os
import resource
import subprocess
import sys
import time

import pytest

LINES = int(os.environ.get("EDGE_REC_CATALOGUE_LINES", "20000"))
RAY_LINES = int(os.environ.get("EDGE_REC_RAY_LINES", "4000"))


def write_items(path, titles, n):
    with open(path, "w", encoding="utf-8") as f:  # distinct texts (a numbered suffix), as a catalogue has
        for i in range(n):
            f.write(json.dumps({"id": f"i{i}", "text": f"{titles[i % len(titles)]} {i}"}, ensure_ascii=False) + "\n")
    return path


def job_once(src, dst) -> dict:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "edge_rec", "classify", "--profile", "phone", "--input", str(src),
                          "--output", str(dst), "--vector-format", "int8"], capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    assert out.returncode == 0, out.stderr
    written = json.loads(out.stdout)["written"]
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the largest child so far: this job's
    return {"items": written, "seconds": round(seconds, 1), "titles_per_s": round(written / seconds, 1),
            "peak_rss_mb": round(peak_kb / 1024, 1), "threads": 1}


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss in kB")
def test_catalogue_job_memory_and_throughput(benchmark, titles, tmp_path):
    pytest.importorskip("pyarrow")
    benchmark.group = "catalogue"
    src = write_items(tmp_path / "items.jsonl", titles, LINES)
    result = benchmark.pedantic(job_once, args=(src, tmp_path / "out.parquet"), rounds=1, iterations=1)
    benchmark.extra_info.update(result)
    assert result["items"] == LINES


@pytest.mark.parametrize("workers", [1, 2])
def test_ray_workers_throughput(benchmark, titles, tmp_path, workers):
    ray = pytest.importorskip("ray")
    import pyarrow as pa
    import pyarrow.parquet as pq

    from edge_rec.catalogue import ClassifyBatches

    benchmark.group = "catalogue-ray"
    records = [{"id": f"i{i}", "text": f"{titles[i % len(titles)]} {i}"} for i in range(RAY_LINES)]
    pq.write_table(pa.Table.from_pylist(records), tmp_path / "items.parquet")
    ray.init(num_cpus=workers + 1, include_dashboard=False, log_to_driver=False)  # + 1 CPU to read and write

    def run():
        ray.data.read_parquet(str(tmp_path / "items.parquet"), override_num_blocks=8).map_batches(
            ClassifyBatches, fn_constructor_kwargs={"threads": 1, "vector": "int8"}, concurrency=workers,
            batch_size=256, batch_format="pyarrow").write_parquet(str(tmp_path / f"out-{time.monotonic_ns()}"))

    try:
        t0 = time.perf_counter()
        benchmark.pedantic(run, rounds=1, iterations=1)
        seconds = time.perf_counter() - t0
    finally:
        ray.shutdown()
    benchmark.extra_info.update({"workers": workers, "items": RAY_LINES, "seconds": round(seconds, 1),
                                 "titles_per_s": round(RAY_LINES / seconds, 1),
                                 "titles_per_s_per_worker": round(RAY_LINES / seconds / workers, 1),
                                 "cpus": os.cpu_count(), "note": "includes starting the workers and loading the bundle"})
