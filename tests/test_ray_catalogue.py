"""The catalogue step on Ray Data (slow: starts a local Ray with 2 workers; needs the `ray` extra): the same rows as
the single-process job, whichever worker classified them."""
import json

import numpy as np
import pytest

from edge_rec.resources import shipped

pytestmark = pytest.mark.slow
ray = pytest.importorskip("ray")


def test_two_ray_workers_give_the_single_process_rows(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from edge_rec import ContentClassifier
    from edge_rec.catalogue import ClassifyBatches, classified_items, classify_catalogue

    items = [json.loads(line) for line in (shipped("examples") / "items.jsonl").read_text(encoding="utf-8").splitlines()]
    records = [{"id": f"{it['id']}-{k}", "text": it["text"]} for k in range(4) for it in items]  # 232 items
    pq.write_table(pa.Table.from_pylist(records), tmp_path / "items.parquet")
    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False)  # 2 workers + 1 CPU for reading and writing
    try:
        ray.data.read_parquet(str(tmp_path / "items.parquet"), override_num_blocks=4).map_batches(
            ClassifyBatches, fn_constructor_kwargs={"threads": 1, "vector": "int8"}, concurrency=2, batch_size=32,
            batch_format="pyarrow").write_parquet(str(tmp_path / "ray.parquet"))
    finally:
        ray.shutdown()
    classify_catalogue(ContentClassifier(cache_size=0), tmp_path / "items.parquet", tmp_path / "one.parquet",
                       vector="int8")
    by_ray = {i: (c, key) for i, _, c, key in classified_items(tmp_path / "ray.parquet")}
    alone = {i: (c, key) for i, _, c, key in classified_items(tmp_path / "one.parquet")}
    assert by_ray.keys() == alone.keys() == {r["id"] for r in records}
    for i, (c, key) in alone.items():
        other, other_key = by_ray[i]
        # Other batch mates pad to other lengths: float32 sums in another order, about 1e-6 apart at most.
        assert other.primary == c.primary and other_key == key and abs(other.primary_prob - c.primary_prob) < 1e-5
        np.testing.assert_allclose(other.vector, c.vector, atol=1e-6)
