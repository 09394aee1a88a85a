#!/usr/bin/env bash
# The runtime's answers on arm64, checked against this x86 machine: an arm64 Debian root run under qemu user-mode
# emulation (built once, cached) installs the package's wheel and the runtime from PyPI's aarch64 wheels, runs the
# torch-free tests and `edge-rec demo`, then classifies 1,000 held-out titles and recommends for 20 users with the
# default bundle and its mobile (ORT format) version, once per emulated core. scripts/arm64_check.py compares each
# run with x86 and writes reports/arm64.json; the script fails past its tolerances (top-1 agreement >= 99.5%,
# recommend top-10 overlap >= 9/10 on average). Emulated: figures are answers, never timings.
#
#   sudo scripts/check_arm64.sh            # about 10 minutes the first time (root, pip), then about 5
#
# Needs root (debootstrap, chroot), debootstrap and qemu-user-static (apt-get install debootstrap qemu-user-static),
# binfmt_misc, ../shared/data (the held-out titles) and the export extra on the host (the inputs, the mobile bundle).
# Environment: EDGE_REC_ARM64_ROOT (the cached root), EDGE_REC_ARM64_CPUS (qemu CPU models), EDGE_REC_DATA.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=${EDGE_REC_ARM64_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/edge-rec/arm64-root}
# qemu's default model (`max`) has SME, with which onnxruntime 1.32 under qemu 7.2 was seen answering wrongly
# without an error (with the host's cpuinfo; not reproduced with the root's own): the models are pinned. cortex-a53: no dot product (older phones); cortex-a76: dot product (most phones).
CPUS=${EDGE_REC_ARM64_CPUS:-"cortex-a76 cortex-a53 max,sme=off"}
DATA=${EDGE_REC_DATA:-../shared/data}
PY=${PYTHON:-python}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

scripts/arm64_root.sh "$ROOT"
versions=$($PY -c "import numpy, onnxruntime, tokenizers; print(f'numpy=={numpy.__version__} onnxruntime=={onnxruntime.__version__} tokenizers=={tokenizers.__version__}')")

echo "== x86 reference"
$PY -m pip wheel --no-deps --no-build-isolation -q . -w "$WORK/dist"
$PY scripts/arm64_check.py inputs --data "$DATA" --out "$WORK/inputs.json"
$PY -m edge_rec_export.bundle.mobile_bundle "$($PY -c 'import edge_rec; print(edge_rec.default_bundle_path())')" "$WORK/mobile"
$PY scripts/arm64_check.py probe "$WORK/inputs.json" "$WORK/x86.json"
$PY scripts/arm64_check.py probe "$WORK/inputs.json" "$WORK/x86-mobile.json" --bundle "$WORK/mobile"

rm -rf "$ROOT/check" && mkdir -p "$ROOT/check"
cp -r "$WORK/dist" "$WORK/inputs.json" "$WORK/mobile" scripts/arm64_check.py tests pyproject.toml "$ROOT/check/"

# onnxruntime reads the CPU's description; the host's x86 /proc/cpuinfo crashes it under qemu, so the root gets
# plain files (no /proc, /sys mounts) describing the emulated core. Features come from qemu's HWCAPs either way.
cpuinfo() {
  local features="fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid" part variant revision
  case "$1" in
    cortex-a53) part=0xd03 variant=0x0 revision=4 ;;
    cortex-a76) part=0xd0b variant=0x4 revision=1
                features="$features atomics fphp asimdhp asimdrdm lrcpc dcpop asimddp" ;;
    max*)       part=0x051 variant=0x0 revision=0  # qemu's `max` reports no real core
                features="$features atomics fphp asimdhp asimdrdm lrcpc dcpop asimddp sve i8mm" ;;
    *) echo "check_arm64: no cpuinfo for qemu CPU '$1' (known: cortex-a53, cortex-a76, max...)" >&2; exit 2 ;;
  esac
  mkdir -p "$ROOT/sys/devices/system/cpu"
  echo 0 > "$ROOT/sys/devices/system/cpu/possible"
  echo 0 > "$ROOT/sys/devices/system/cpu/present"
  printf 'processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: %s\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: %s\nCPU part\t: %s\nCPU revision\t: %s\n\n' \
    "$features" "$variant" "$part" "$revision" > "$ROOT/proc/cpuinfo"
}
in_root() {  # CPU, command...
  chroot "$ROOT" /usr/bin/env -i HOME=/root PATH=/venv/bin:/usr/bin:/bin LANG=C.UTF-8 \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    PIP_DISABLE_PIP_VERSION_CHECK=1 QEMU_CPU="$1" "${@:2}"
}

first=${CPUS%% *}
cpuinfo "$first"
echo "== arm64 root: install ($versions, the wheel)"
# shellcheck disable=SC2086
in_root "$first" pip install -q $versions pytest hypothesis pytest-benchmark
in_root "$first" pip install -q --no-deps --force-reinstall "/check/dist/$(basename "$WORK"/dist/*.whl)"
echo "== arm64 ($first): torch-free tests"
in_root "$first" sh -c "cd /check && python -m pytest -q -p no:cacheprovider -m 'not slow' tests/test_bundle.py \
  tests/test_cli.py tests/test_default_bundle.py tests/test_robustness.py tests/test_runtime.py tests/test_scope.py \
  tests/test_store.py"
echo "== arm64 ($first): edge-rec demo"
in_root "$first" sh -c "cd /tmp && edge-rec demo > /check/demo.txt" && tail -3 "$ROOT/check/demo.txt"

runs=() labels=() mobile_runs=() mobile_labels=()
for cpu in $CPUS; do
  echo "== arm64 ($cpu): classify + recommend, default bundle and mobile bundle"
  cpuinfo "$cpu"
  in_root "$cpu" python /check/arm64_check.py probe /check/inputs.json "/check/$cpu.json"
  in_root "$cpu" python /check/arm64_check.py probe /check/inputs.json "/check/$cpu-mobile.json" --bundle /check/mobile
  runs+=("$ROOT/check/$cpu.json") labels+=("$cpu")
  mobile_runs+=("$ROOT/check/$cpu-mobile.json") mobile_labels+=("$cpu mobile")
done
emulator="$(qemu-aarch64-static --version | head -1), user mode"
status=0
rm -f reports/arm64.json  # this run's report only: the mobile runs are merged into the classifier runs' file
$PY scripts/arm64_check.py compare "$WORK/x86.json" "${runs[@]}" --labels "${labels[@]}" --emulator "$emulator" || status=1
$PY scripts/arm64_check.py compare "$WORK/x86-mobile.json" "${mobile_runs[@]}" --labels "${mobile_labels[@]}" --emulator "$emulator" || status=1
exit $status
