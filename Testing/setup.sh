#!/usr/bin/env bash
# Installs everything the test suite needs, idempotently: Debian's Orthanc (+ DICOMweb plugin),
# nginx and mricron-data (real MR anatomy), then a virtual environment with the Python packages,
# and a second one with Slicer 5.8's versions (pydicom 2.4, numpy 1.26, dicomweb-client 0.59).
# Called by `make test`; safe to run again (it skips what is already there).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
log() { printf '[setup] %s\n' "$*"; }
# CI=true, CI=1 or CI=yes in any case (Testing/support.py `under_ci` reads it the same way).
under_ci() { case "$(printf '%s' "${CI:-}" | tr '[:upper:]' '[:lower:]')" in true|1|yes) return 0;; esac; return 1; }

debian_packages=(orthanc orthanc-dicomweb nginx mricron-data iproute2 openssl)
missing=()
for p in "${debian_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    log "installing Debian packages: ${missing[*]}"
    # Keep the packages' own daemons from starting on all interfaces (tests start their own, on loopback).
    created_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && created_policy=1
    fi
    trap '[ "$created_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d' EXIT
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # --no-install-recommends: orthanc-gdcm crashes Orthanc 1.10 on JPEG-LS/J2K transcoding.
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    rm -f /usr/sbin/policy-rc.d; created_policy=0
    # The packages may still have started their daemons (no policy support): stop them.
    for svc in orthanc nginx; do
      pkill -x "$svc" 2>/dev/null || true
    done
    pkill -x Orthanc 2>/dev/null || true
  else
    log "missing Debian packages: ${missing[*]} (run as root, or install them, to run the server tests)"
    under_ci && { log "CI=${CI}: refusing to continue without them"; exit 1; }
  fi
fi

# shellcheck source=Testing/venv.sh
source "$here/Testing/venv.sh"
install_test_env() { "$1" -m pip install -q -e ".[test]"; }
install_slicer58_env() {
  "$1" -m pip install -q -r Testing/requirements-slicer58.txt
  "$1" -m pip install -q --no-deps -e .
}

ensure_venv "$here/.venv" install_test_env pyproject.toml
ensure_venv "$here/.venv-slicer58" install_slicer58_env pyproject.toml Testing/requirements-slicer58.txt
log "ready"
