"""Signed bundles (issue 36): keygen, sign, verify, and every loader refusing an unsigned or re-hashed bundle when
given trusted keys, before onnxruntime or tokenizers see a file."""
import json
import shutil

import pytest

pytest.importorskip("cryptography")

from edge_rec import ContentClassifier, EdgeRecommender, Store, load_bundle  # noqa: E402
from edge_rec.bundle import BundleError, sha256  # noqa: E402
from edge_rec.cli import main as cli_main  # noqa: E402
from edge_rec_export.cli import main as export_main  # noqa: E402


@pytest.fixture()
def signed(rec_bundle, tmp_path):
    """A signed copy of the tiny recommending bundle, its key pair, and a second (untrusted) key pair."""
    bundle = tmp_path / "signed"
    shutil.copytree(rec_bundle, bundle)
    assert export_main(["keygen", str(tmp_path / "keys" / "release")]) == 0
    assert export_main(["keygen", str(tmp_path / "keys" / "other")]) == 0
    assert export_main(["sign", str(bundle), "--key", str(tmp_path / "keys" / "release")]) == 0
    return bundle, tmp_path / "keys" / "release.pub", tmp_path / "keys" / "other.pub"


def rehash(bundle, name: str, data: bytes) -> None:
    """Replace a file and re-compute its manifest entry: what anyone who can write the bundle can do."""
    (bundle / name).write_bytes(data)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"][name] = {"sha256": sha256(bundle / name), "bytes": len(data)}
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def test_keygen_writes_a_private_key_only_its_owner_reads_and_never_overwrites(tmp_path, capsys):
    key = tmp_path / "k"
    assert export_main(["keygen", str(key)]) == 0
    assert (key.stat().st_mode & 0o777) == 0o600 and (tmp_path / "k.pub").read_text().startswith("-----BEGIN PUBLIC")
    assert export_main(["keygen", str(key)]) == 2 and "never overwritten" in capsys.readouterr().err


def test_a_signed_bundle_verifies_and_loads_with_its_key(signed, capsys):
    bundle, pub, other = signed
    assert load_bundle(bundle, trusted_keys=[pub]).signed_by
    assert load_bundle(bundle, trusted_keys=[other, pub]).signed_by  # key rotation: any key of the list
    assert cli_main(["verify", str(bundle), "--trusted-key", str(pub)]) == 0
    assert json.loads(capsys.readouterr().out)["verified"] is True
    with Store(bundle.parent / "s.db", bundle, trusted_keys=[pub]) as store:
        assert store.recommender.bundle.signed_by


@pytest.mark.parametrize("tamper", ["model", "manifest", "unsigned", "other key"])
def test_a_tampered_rehashed_or_unsigned_bundle_is_refused_by_every_loader(signed, capsys, tamper, monkeypatch):
    bundle, pub, other = signed
    keys = [pub]
    if tamper == "model":
        model = json.loads((bundle / "manifest.json").read_text())["models"]["ranker"]["file"]
        rehash(bundle, model, (bundle / model).read_bytes()[:-1] + b"\0")
    elif tamper == "manifest":
        manifest = json.loads((bundle / "manifest.json").read_text())
        manifest["pipeline"]["lam"] = 0.0
        (bundle / "manifest.json").write_text(json.dumps(manifest))
    elif tamper == "unsigned":
        (bundle / "manifest.sig").unlink()
    else:
        keys = [other]
    import onnxruntime
    import tokenizers

    def never(*args, **kwargs):
        raise AssertionError("a file reached onnxruntime or tokenizers before the signature was checked")
    monkeypatch.setattr(onnxruntime, "InferenceSession", never)
    monkeypatch.setattr(tokenizers.Tokenizer, "from_str", never)
    for load in (lambda: load_bundle(bundle, trusted_keys=keys), lambda: ContentClassifier(bundle, trusted_keys=keys),
                 lambda: EdgeRecommender(bundle, trusted_keys=keys),
                 lambda: Store(bundle.parent / "t.db", bundle, trusted_keys=keys)):
        with pytest.raises(BundleError, match="manifest.sig"):
            load()
    assert cli_main(["verify", str(bundle), "--trusted-key", str(keys[0])]) == 2
    err = capsys.readouterr().err
    assert "manifest.sig" in err and len(err.strip().splitlines()) == 1
    assert cli_main(["classify", "x", "--bundle", str(bundle), "--trusted-key", str(keys[0])]) == 2


def test_a_bundle_loaded_without_keys_is_not_taken_as_checked(signed):
    bundle, pub, _ = signed
    with pytest.raises(BundleError, match="without a check of its signature"):
        EdgeRecommender(load_bundle(bundle), trusted_keys=[pub])
    assert EdgeRecommender(load_bundle(bundle, trusted_keys=[pub]), trusted_keys=[pub]).bundle.signed_by


def test_a_key_file_that_is_not_an_ed25519_public_key_is_one_error(signed, tmp_path):
    bundle, _, _ = signed
    bad = tmp_path / "bad.pub"
    bad.write_text("not a key")
    with pytest.raises(BundleError, match="not a PEM public key"):
        load_bundle(bundle, trusted_keys=[bad])
    with pytest.raises(BundleError, match="cannot be read"):
        load_bundle(bundle, trusted_keys=[tmp_path / "missing.pub"])
