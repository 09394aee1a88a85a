"""Signed bundles: who made a bundle, not only whether its files are intact.

The manifest pins every file by sha256, so one Ed25519 signature over the manifest's bytes (`manifest.sig`, written
by `edge-rec-export sign`) vouches for the whole bundle. A loader given trusted public keys (a list: key rotation)
reads the manifest once, checks the signature over exactly those bytes against each key, and refuses an unsigned or
wrongly signed bundle before any file reaches onnxruntime or tokenizers. Ed25519 comes from `cryptography`
(`pip install "edge-rec[trust]"`); without trusted keys nothing here is imported.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Iterable, Union

from edge_rec.bundle import BundleError

SIGNATURE = "manifest.sig"
MAX_SIGNATURE_BYTES = 4096
TrustedKey = Union[str, os.PathLike, bytes]  # a public key file (PEM), or its PEM bytes


class TrustError(BundleError):
    """A signature that is missing, malformed or made by no trusted key, or a trusted key that cannot be used."""


def _ed25519():
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise TrustError("checking bundle signatures needs the 'cryptography' package: "
                         'pip install "edge-rec[trust]"') from None
    return ed25519, serialization, InvalidSignature


def key_id(public_raw: bytes) -> str:
    """A short, stable name of a public key: the first 16 hex digits of its sha256."""
    return hashlib.sha256(public_raw).hexdigest()[:16]


def public_keys(trusted: Iterable[TrustedKey]) -> dict[str, object]:
    """key id -> Ed25519 public key, from PEM files or PEM bytes; a key that is not Ed25519 is refused."""
    ed25519, serialization, _ = _ed25519()
    if isinstance(trusted, (str, bytes, os.PathLike)):
        trusted = [trusted]
    keys = {}
    for k in trusted:
        where = "a trusted key given as bytes" if isinstance(k, bytes) else os.fspath(k)
        try:
            pem = k if isinstance(k, bytes) else Path(k).read_bytes()
            key = serialization.load_pem_public_key(pem)
        except OSError as e:
            raise TrustError(f"{where}: cannot be read ({e.strerror or e})") from None
        except ValueError:
            raise TrustError(f"{where}: not a PEM public key (make one with `edge-rec-export keygen`)") from None
        if not isinstance(key, ed25519.Ed25519PublicKey):
            raise TrustError(f"{where}: not an Ed25519 public key")
        keys[key_id(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))] = key
    if not keys:
        raise TrustError("trusted_keys is empty; give at least one public key, or none to skip the check")
    return keys


def check_signature(bundle_dir: Path, manifest_bytes: bytes, trusted: Iterable[TrustedKey]) -> str:
    """The id of the trusted key whose signature `bundle_dir/manifest.sig` holds over `manifest_bytes`, or a
    TrustError naming the file and what is wrong."""
    keys = public_keys(trusted)
    _, _, invalid = _ed25519()
    path = Path(bundle_dir) / SIGNATURE
    if not path.is_file():
        raise TrustError(f"{path}: missing; the bundle is not signed and trusted keys were given "
                         "(sign it with `edge-rec-export sign BUNDLE --key KEYFILE`)")
    if path.stat().st_size > MAX_SIGNATURE_BYTES:
        raise TrustError(f"{path}: {path.stat().st_size} bytes, not a signature file")
    try:
        sig = json.loads(path.read_bytes())
        signature = base64.b64decode(sig["signature"], validate=True)
        if sig.get("algorithm") != "ed25519" or len(signature) != 64:
            raise ValueError
    except (ValueError, KeyError, TypeError, RecursionError):
        raise TrustError(f"{path}: not a signature file (expected JSON with algorithm 'ed25519' and a base64 "
                         "64-byte signature)") from None
    for kid, key in keys.items():
        try:
            key.verify(signature, manifest_bytes)
            return kid
        except invalid:
            continue
    raise TrustError(f"{path}: the signature over manifest.json is not from any trusted key "
                     f"({', '.join(keys)}); the bundle was changed after signing or signed by another key")
