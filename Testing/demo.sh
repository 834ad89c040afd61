#!/usr/bin/env bash
# `make demo`: a virtual environment .venv-demo with the package and its demo extras (codecs,
# pynrrd, matplotlib; no root, no Orthanc or nginx), then the demo command with any arguments
# given (e.g. `make demo DEMO_ARGS="--rate 100mbit"`). Safe to run again: the venv is reused.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
log() { printf '[demo] %s\n' "$*"; }
# shellcheck source=Testing/venv.sh
source "$here/Testing/venv.sh"

install_demo_env() { "$1" -m pip install -q -e ".[demo]"; }

ensure_venv "$here/.venv-demo" install_demo_env pyproject.toml
exec "$here/.venv-demo/bin/python" -m ProgressiveDicomFetchLib demo "$@"
