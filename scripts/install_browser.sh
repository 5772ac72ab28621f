#!/usr/bin/env bash
# Debian's Chromium and its driver, for the web page's browser tests (tests/test_web_browser.py,
# which skip without them). Installs only as root on a machine with apt-get and no driver yet;
# a failed install fails the script, with apt's own words.
set -euo pipefail
if command -v chromedriver >/dev/null; then exit 0; fi
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  log=$(mktemp)
  if ! (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) >"$log" 2>&1; then
    cat "$log" >&2
    echo "install_browser: apt-get could not install chromium and chromium-driver" >&2
    exit 1
  fi
  rm -f "$log"
else
  echo "install_browser: no chromedriver, and not root with apt-get: the browser tests will be skipped" >&2
fi
