#!/usr/bin/env bash
# CI service: Debian's Chromium for the web live-view browser tests (driven by Playwright for Python).
# Idempotent: does nothing when /usr/bin/chromium is already there. Never runs `playwright install`.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    echo "chromium already installed: $(chromium --version 2>/dev/null || echo unknown version)"
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends chromium
chromium --version || true
