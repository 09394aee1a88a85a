#!/usr/bin/env bash
# Builds (once; cached) an arm64 Debian root that runs under qemu user-mode emulation, with a Python venv in
# /venv. Needs root, debootstrap, qemu-user-static and binfmt_misc (registered here if the kernel allows).
# Usage: scripts/arm64_root.sh ROOT
set -euo pipefail
ROOT=${1:?usage: arm64_root.sh ROOT}
SUITE=${EDGE_REC_ARM64_SUITE:-bookworm}
MIRROR=${EDGE_REC_ARM64_MIRROR:-http://deb.debian.org/debian}

die() { echo "arm64_root: $*" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot, mounts)"
command -v debootstrap >/dev/null || die "needs debootstrap (apt-get install debootstrap qemu-user-static)"
[ -x /usr/libexec/qemu-binfmt/aarch64-binfmt-P ] || die "needs qemu-user-static (apt-get install qemu-user-static)"
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || die "binfmt_misc is not mountable here"
fi
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  cat /usr/lib/binfmt.d/qemu-aarch64.conf > /proc/sys/fs/binfmt_misc/register || die "cannot register qemu-aarch64"
fi

if [ ! -e "$ROOT/.edge-rec-root-ready" ]; then
  rm -rf "$ROOT"
  # the second stage runs emulated: about 5 minutes
  debootstrap --arch=arm64 --variant=minbase --include=python3,python3-venv,ca-certificates "$SUITE" "$ROOT" "$MIRROR"
  touch "$ROOT/.edge-rec-root-ready"
fi
# the registry may be reached through a proxy with its own certificates: the host's trust store goes in
cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
if [ ! -x "$ROOT/venv/bin/python" ]; then
  chroot "$ROOT" /usr/bin/python3 -m venv /venv
fi
