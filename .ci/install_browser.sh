#!/usr/bin/env bash
# Installs Debian's Chromium and ChromeDriver for the listening-page browser test
# (tests/test_listen_browser.py drives them with Selenium, a test extra in setup.py).
# Idempotent: does nothing when /usr/bin/chromium and /usr/bin/chromedriver are already there.
# Playwright's or Selenium Manager's own browser downloads cannot work offline; Debian's packages do.
set -euo pipefail

if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
    echo "install_browser: $(/usr/bin/chromium --version 2>/dev/null || echo chromium) already installed"
    exit 0
fi

SUDO=""
if [[ "$(id -u)" -ne 0 ]]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q chromium chromium-driver
echo "install_browser: installed $(/usr/bin/chromium --version 2>/dev/null || echo chromium)"
