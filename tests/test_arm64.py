"""The runtime's answers on arm64 match x86 (slow: runs scripts/check_arm64.sh, an emulated arm64 root; about 10
minutes the first time). Skipped, with the reason, where the machine cannot: it needs root, debootstrap,
qemu-user-static, binfmt_misc and ../shared/data."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import SHARED_DATA

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (debootstrap, chroot)"
    if shutil.which("debootstrap") is None:
        return "needs debootstrap (apt-get install debootstrap)"
    if not Path("/usr/libexec/qemu-binfmt/aarch64-binfmt-P").exists():
        return "needs qemu-user-static (apt-get install qemu-user-static)"
    if not Path("/proc/sys/fs/binfmt_misc").is_dir():
        return "needs binfmt_misc"
    if not (SHARED_DATA / "toutiao_partial").is_dir():
        return "needs ../shared/data (the held-out titles)"
    return None


@pytest.mark.skipif(missing() is not None, reason=str(missing()))
def test_arm64_answers_match_x86():
    out = subprocess.run(["bash", str(ROOT / "scripts" / "check_arm64.sh")], cwd=ROOT, capture_output=True,
                         text=True, timeout=3600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
