#!/usr/bin/env bash
# Runs every check greenlight has, on a fresh Debian machine: installs what the tests need
# (faketime, Chromium, HAProxy, Prometheus from Debian packages; PyGithub and python-gitlab from
# PyPI into a venv), then format, lint and tests.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v faketime >/dev/null || need+=(faketime)
command -v openssl >/dev/null || need+=(openssl)
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
command -v haproxy >/dev/null || need+=(haproxy)
command -v prometheus >/dev/null || need+=(prometheus)
python3 -c "import ensurepip" 2>/dev/null || need+=(python3 python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  # Installing packages must not start their services on default ports.
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Independent clients of the GitHub and GitLab fakes (PyGithub, python-gitlab), from PyPI into a
# venv under target/ (kept between runs).
PYC=target/pyclients
if ! "$PYC/bin/python" -c "import github, gitlab" 2>/dev/null; then
  rm -rf "$PYC"
  python3 -m venv "$PYC"
  "$PYC/bin/pip" install -q "PyGithub==2.*" "python-gitlab==8.*"
fi
export GREENLIGHT_PYGITHUB="$PWD/$PYC/bin/python" GL_PYTHON="$PWD/$PYC/bin/python"

cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo test
