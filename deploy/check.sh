#!/usr/bin/env bash
# `make deploy-check`: installs what the check needs, once, then runs deploy/check.py.
#   kubectl            Debian's package (apt-get), if it is not installed
#   kubernetes-validate  a virtualenv under ~/.cache/keyplane, pinned, offline schemas
set -euo pipefail
binary="${1:?usage: deploy/check.sh <keyplane binary>}"
here="$(cd "$(dirname "$0")" && pwd)"

if ! command -v kubectl >/dev/null; then
  echo "deploy-check: installing kubectl (apt-get)"
  sudo_if_needed=""; [ "$(id -u)" -eq 0 ] || sudo_if_needed="sudo"
  $sudo_if_needed apt-get install -y -qq kubectl >/dev/null \
    || { $sudo_if_needed apt-get update -qq && $sudo_if_needed apt-get install -y -qq kubectl >/dev/null; }
fi

venv="${XDG_CACHE_HOME:-$HOME/.cache}/keyplane/deploy-check"
validator="$venv/bin/kubernetes-validate"
if ! "$validator" --version 2>/dev/null | grep -q "1.37.0"; then
  echo "deploy-check: installing kubernetes-validate into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check kubernetes-validate==1.37.0
fi

exec "$venv/bin/python" "$here/check.py" --bin "$binary" --validator "$validator"
