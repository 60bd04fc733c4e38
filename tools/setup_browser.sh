#!/usr/bin/env bash
# Installs Debian's headless-capable Chromium, which the report test drives from its
# command line (screenshot, DOM dump, console log). Idempotent: a no-op once `chromium`
# is on PATH. Needs root for apt-get.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "tools/setup_browser.sh: needs root to install Debian's chromium package;" \
         "run it once with sudo" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Refresh the package lists only when they do not know chromium yet.
if ! apt-cache show chromium >/dev/null 2>&1; then
    apt-get update -qq
fi
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
command -v chromium >/dev/null
