"""Ed25519 keys and bundle signatures (the runtime checks them: edge_rec/trust.py).

    edge-rec-export keygen keys/release            # keys/release (private, mode 0600) and keys/release.pub
    edge-rec-export sign bundles/my-news --key keys/release
    edge-rec verify bundles/my-news --trusted-key keys/release.pub

The signature covers manifest.json's bytes, and the manifest pins every file by sha256: signing after the bundle is
final vouches for all of it; any later change to a file or to the manifest is refused by a loader given the key.
"""
from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from edge_rec.bundle import MANIFEST, load_bundle
from edge_rec.trust import SIGNATURE, key_id


def keygen(keyfile: Path) -> tuple[Path, Path]:
    """A new key pair: `keyfile` (PEM PKCS#8, readable by its owner only) and `keyfile`.pub (PEM); never
    overwrites a key."""
    public = keyfile.with_name(keyfile.name + ".pub")
    for path in (keyfile, public):
        if path.exists():
            raise FileExistsError(f"{path} exists; a key is never overwritten (choose another name)")
    key = ed25519.Ed25519PrivateKey.generate()
    keyfile.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(keyfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return keyfile, public


def sign(bundle_dir: Path, keyfile: Path) -> str:
    """Write `bundle_dir`/manifest.sig with the key in `keyfile`, after checking the bundle (every file against the
    manifest); returns the key id."""
    load_bundle(bundle_dir)  # never vouch for a bundle that does not verify
    try:
        key = serialization.load_pem_private_key(keyfile.read_bytes(), password=None)
    except ValueError:
        raise ValueError(f"{keyfile}: not an unencrypted PEM private key (make one with `edge-rec-export keygen`)") \
            from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ValueError(f"{keyfile}: not an Ed25519 private key")
    manifest = (bundle_dir / MANIFEST).read_bytes()
    kid = key_id(key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
    signature = {"algorithm": "ed25519", "key_id": kid, "signature": base64.b64encode(key.sign(manifest)).decode()}
    tmp = bundle_dir / (SIGNATURE + ".tmp")
    tmp.write_text(json.dumps(signature) + "\n", encoding="utf-8")
    tmp.replace(bundle_dir / SIGNATURE)
    return kid
