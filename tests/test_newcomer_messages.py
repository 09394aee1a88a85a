"""Messages a newcomer can act on (issue 37): each was found by trying, each is one line naming what to do."""
import json
import os
import subprocess
import sys


from edge_rec.cli import main as cli_main
from edge_rec_export.cli import main as export_main


def run(main, args) -> int:
    try:
        return main(args)
    except SystemExit as e:  # argparse's own errors
        return e.code


def one_line(capsys, *expected: str) -> str:
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for text in expected:
        assert text in err, err
    return err


def test_prune_max_age_days_speaks_of_days(capsys, tmp_path):
    assert run(cli_main, ["store", "--db", str(tmp_path / "s.db"), "prune", "--max-age-days", "0"]) == 2
    one_line(capsys, "number of days > 0")


def test_texts_naming_a_directory_says_so(capsys, tmp_path):
    assert run(export_main, ["build", "--texts", str(tmp_path), "--out", str(tmp_path / "b")]) == 2
    one_line(capsys, "a directory; give the file itself")


def test_info_on_a_file_asks_for_its_directory(capsys, tmp_path):
    manifest = tmp_path / "manifest.json"
    manifest.write_text("{}")
    assert run(cli_main, ["info", str(manifest)]) == 2
    one_line(capsys, "is a file; give the bundle's directory")


def test_an_output_that_is_no_catalogue_is_left_untouched(capsys, tmp_path):
    items, out = tmp_path / "items.jsonl", tmp_path / "notes.jsonl"
    items.write_text('{"id": "a", "text": "一条新闻"}\n', encoding="utf-8")
    out.write_text('{"note": "mine"}\n{"note": "half a li', encoding="utf-8")
    assert run(cli_main, ["classify", "--input", str(items), "--output", str(out)]) == 2
    one_line(capsys, "is not a catalogue output")
    assert out.read_text(encoding="utf-8").endswith("half a li")  # nothing cut or appended


def test_output_to_a_device_says_it_must_be_a_file(capsys, tmp_path):
    items = tmp_path / "items.jsonl"
    items.write_text('{"id": "a", "text": "一条新闻"}\n', encoding="utf-8")
    assert run(cli_main, ["classify", "--input", str(items), "--output", "/dev/null"]) == 2
    one_line(capsys, "not a regular file")


def test_store_takes_db_after_the_action_and_record_says_what_it_did(capsys, tmp_path, rec_bundle):
    items = tmp_path / "items.jsonl"
    items.write_text('{"id": "a", "text": "一条新闻"}\n', encoding="utf-8")
    db = str(tmp_path / "s.db")
    assert run(cli_main, ["store", "--bundle", str(rec_bundle), "add", str(items), "--db", db]) == 0
    capsys.readouterr()
    assert run(cli_main, ["store", "--bundle", str(rec_bundle), "record", "u", "a", "click", "--db", db]) == 0
    assert json.loads(capsys.readouterr().out) == {"user": "u", "item": "a", "event": "click", "recorded": True}
    assert run(cli_main, ["store", "record", "u", "a", "click"]) == 2
    one_line(capsys, "store needs --db FILE")


def test_recommend_over_no_items_is_an_error(capsys, tmp_path, rec_bundle):
    items, user = tmp_path / "empty.jsonl", tmp_path / "user.json"
    items.write_text("\n", encoding="utf-8")
    user.write_text('{"history": []}', encoding="utf-8")
    assert run(cli_main, ["recommend", "--bundle", str(rec_bundle), "--user", str(user), "--items", str(items)]) == 2
    one_line(capsys, "no items")


def test_skip_bad_goes_past_malformed_json_and_invalid_utf8_in_a_catalogue_job(capsys, tmp_path, rec_bundle):
    items, out = tmp_path / "items.jsonl", tmp_path / "out.jsonl"
    items.write_bytes('{"id": "a", "text": "一条新闻"}\n{"id": "b", "te\n'.encode() + b'\xff\xfe\n'
                      + '{"id": "c", "text": "另一条"}\n'.encode())
    assert run(cli_main, ["classify", "--bundle", str(rec_bundle), "--input", str(items), "--output", str(out),
                          "--skip-bad"]) == 0
    assert [json.loads(line)["id"] for line in out.read_text(encoding="utf-8").splitlines()] == ["a", "c"]
    errors = (tmp_path / "out.jsonl.errors.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(errors) == 2 and "not a JSON object" in errors[0] and "not valid UTF-8" in errors[1]


# The child sends itself SIGINT when the CLI first imports onnxruntime: a real Ctrl-C at a fixed point of start-up
# (a timed signal from outside raced a fast machine, landing after the command had finished). It first gives SIGINT
# Python's usual handler: a test run started in the background of a shell inherits SIGINT ignored.
CTRL_C_AT_ONNXRUNTIME_IMPORT = """
import os, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == "onnxruntime":
            os.kill(os.getpid(), signal.SIGINT)
        return None
sys.meta_path.insert(0, CtrlC())
from edge_rec.entry import main
raise SystemExit(main())
"""


def test_ctrl_c_while_starting_is_one_line():
    proc = subprocess.run([sys.executable, "-c", CTRL_C_AT_ONNXRUNTIME_IMPORT, "classify", "x"], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert proc.returncode == 130 and proc.stdout == "", proc.stdout
    assert proc.stderr.strip() == "edge-rec: interrupted", proc.stderr
