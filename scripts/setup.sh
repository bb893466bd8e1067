#!/usr/bin/env bash
# One idempotent set-up step for a fresh Debian 12 machine (run as root or with sudo).
#   - apt packages: speech sources, audio tools, Arm toolchain and QEMU for later stages
#   - a virtual environment at .venv/ in the repository root
#   - hearmask in editable mode, with its test extras
#   - pyclarity with --no-deps (its full dependency set pulls an unpinned CUDA torch)
# Re-running is cheap: each step is skipped when already done.
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"

apt_packages=(
  espeak-ng flite ffmpeg
  asterisk-core-sounds-fr-g722 asterisk-core-sounds-it-g722 asterisk-core-sounds-ru-g722
  asterisk-core-sounds-en-g722  # reserved for independent evaluation only (DESIGN.md)
  pocketsphinx-testdata
  gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm socat gcc
  jackd2  # the live loop's audio server (dummy backend in the tests)
)
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] apt: installing ${missing[*]}"
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -q
  # jackd2 asks whether to enable realtime scheduling: answer no (the Pi units grant it).
  echo "jackd2 jackd/tweak_rt_limits boolean false" | $sudo_cmd debconf-set-selections
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "[setup] apt: all packages present"
fi

python_bin=${PYTHON:-python3.11}
command -v "$python_bin" >/dev/null || python_bin=python3
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $python_bin"
  "$python_bin" -m venv .venv
fi

stamp=.venv/.hearmask-setup-stamp
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && .venv/bin/python -c "import hearmask, clarity" 2>/dev/null; then
  echo "[setup] python packages up to date"
else
  echo "[setup] pip: installing hearmask (editable) and its dependencies"
  .venv/bin/python -m pip install -q --upgrade pip
  # torch first and exactly pinned, so nothing later can resolve a CUDA build.
  .venv/bin/python -m pip install -q "torch==2.13.0"
  .venv/bin/python -m pip install -q -e ".[test,power,live]"
  .venv/bin/python -m pip install -q --no-deps "pyclarity==0.9.0"
  echo "$want" > "$stamp"
fi
echo "[setup] done: .venv/bin/hearmask is the CLI"
