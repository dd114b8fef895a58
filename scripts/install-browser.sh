#!/usr/bin/env bash
# The web page's browser test drives Debian's chromium headless (Playwright's own browser download
# is not used: it is not reachable from every machine). Idempotent: a second run does nothing.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "==> installing Debian's chromium (for the web page's browser test)"
    apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
else
    echo "the browser test needs chromium: sudo apt-get install chromium (it is skipped as failed otherwise)" >&2
    exit 1
fi
