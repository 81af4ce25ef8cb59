#!/usr/bin/env bash
# Installs, once, what the SDK, console and Python gRPC tests run with, under
# ${XDG_CACHE_HOME:-~/.cache}/keyplane/tools (the e2e tests find them there, or at $KEYPLANE_TOOLS):
#   node/      npm packages pinned in tests/tools/package.json (hey-api, TypeScript, playwright-core)
#   venv/      Python packages pinned in tests/tools/requirements.txt (grpcio, grpcio-tools, …)
#   chromium   Debian's package (apt-get), if it is not installed
# A changed pin reinstalls; otherwise this takes a moment.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tools="${KEYPLANE_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/keyplane/tools}"
mkdir -p "$tools"

stamp() { sha256sum "$1" | cut -c1-16; }

if ! command -v chromium >/dev/null; then
  echo "tools: installing chromium (apt-get)"
  sudo_if_needed=""; [ "$(id -u)" -eq 0 ] || sudo_if_needed="sudo"
  $sudo_if_needed apt-get install -y -qq chromium >/dev/null \
    || { $sudo_if_needed apt-get update -qq && $sudo_if_needed apt-get install -y -qq chromium >/dev/null; }
fi

if [ "$(cat "$tools/node/.stamp" 2>/dev/null)" != "$(stamp "$here/tools/package.json")" ]; then
  echo "tools: installing npm packages into $tools/node"
  rm -rf "$tools/node" && mkdir -p "$tools/node"
  cp "$here/tools/package.json" "$tools/node/"
  (cd "$tools/node" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
  stamp "$here/tools/package.json" >"$tools/node/.stamp"
fi

if [ "$(cat "$tools/venv/.stamp" 2>/dev/null)" != "$(stamp "$here/tools/requirements.txt")" ]; then
  echo "tools: installing Python packages into $tools/venv"
  rm -rf "$tools/venv"
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/tools/requirements.txt"
  stamp "$here/tools/requirements.txt" >"$tools/venv/.stamp"
fi
