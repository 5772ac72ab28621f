#!/usr/bin/env bash
# Debian's Chromium and its driver, for the web page's browser tests (tests/test_web_browser.py,
# which skip without them). Installs only as root on a machine with apt-get and no driver yet.
set -euo pipefail
if command -v chromedriver >/dev/null; then exit 0; fi
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) >/dev/null
else
  echo "install_browser: no chromedriver, and not root with apt-get: the browser tests will be skipped" >&2
fi
