"""`edge-rec bench` on a tiny bundle built in code, with a small time budget."""
import json

import pytest

from conftest import make_rec_bundle
from edge_rec.cli import main as cli


def test_bench_measures_and_writes_json(tiny_export, tiny_ranking, tmp_path, capsys):
    a = make_rec_bundle(tmp_path / "a", tiny_export, tiny_ranking)
    b = make_rec_bundle(tmp_path / "b", tiny_export, tiny_ranking)
    out = tmp_path / "bench.json"
    assert cli(["bench", "--bundle", str(a), "--compare", str(b), "--threads", "1", "--seconds", "0.05",
                "--json", str(out), "--no-cold-start"]) == 0
    table = capsys.readouterr().out
    assert "classify batch 1" in table and "recommend over 10,000" in table
    result = json.loads(out.read_text(encoding="utf-8"))
    assert {"cpu", "flags", "onnxruntime", "cores"} <= set(result["machine"])
    assert len(result["bundles"]) == 2 and result["peak_rss_mb"] > 0
    for figure in result["figures"]:
        assert len(figure["results"]) == 2 and figure["ratio_p50_second_over_first"] > 0
        for r in figure["results"]:
            assert r["runs"] >= 5 and 0 < r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"]


def test_bench_cold_start_in_a_fresh_interpreter(tiny_bundle, capsys):
    assert cli(["bench", "--bundle", str(tiny_bundle), "--threads", "1", "--seconds", "0.02"]) == 0
    assert "cold start tiny: import" in capsys.readouterr().out  # classify-only bundle: no recommend rows


@pytest.mark.parametrize("args", [["--seconds", "0"], ["--seconds", "abc"], ["--threads", "0"], ["--threads", "x"]])
def test_bench_bad_arguments(args, capsys):
    with pytest.raises(SystemExit) as e:
        cli(["bench", *args])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "expected" in err and len(err.strip().splitlines()) == 1  # one line, no usage dump


def test_bench_plot(tiny_bundle, tmp_path, capsys):
    png = tmp_path / "latency.png"
    args = ["bench", "--bundle", str(tiny_bundle), "--threads", "1", "--seconds", "0.02", "--no-cold-start",
            "--plot", str(png)]
    try:
        import matplotlib  # noqa: F401
    except ImportError:  # without the optional extra: a one-line error before anything is measured
        assert cli(args) == 2 and "needs matplotlib" in capsys.readouterr().err
        return
    assert cli(args) == 0 and png.read_bytes()[:4] == b"\x89PNG"
