#!/usr/bin/env bash
# Make sure the browser tests (tests/test_browser.py) have Debian's Chromium and chromedriver.
#
# Exit 0 when both are executable (already there, or installed now with apt-get as root or through
# passwordless sudo); exit 1 with one line saying why when they are missing and cannot be installed.
# `make test` then skips the browser tests with that line, unless FLYWHEEL_REQUIRE_BROWSER=1 (CI),
# where a missing browser fails the run. FLYWHEEL_CHROMIUM / FLYWHEEL_CHROMEDRIVER override the paths
# (the tests of this script use them); FLYWHEEL_BROWSER_INSTALL=0 never installs anything.
set -uo pipefail
chromium="${FLYWHEEL_CHROMIUM:-/usr/bin/chromium}"
driver="${FLYWHEEL_CHROMEDRIVER:-/usr/bin/chromedriver}"

present() { [ -x "$chromium" ] && [ -x "$driver" ]; }
present && exit 0

if [ "${FLYWHEEL_BROWSER_INSTALL:-1}" = 0 ]; then
    echo "ensure-browser: $chromium or $driver is missing (FLYWHEEL_BROWSER_INSTALL=0: not installing)" >&2
    exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-browser: $chromium or $driver is missing and this machine has no apt-get to install chromium chromium-driver" >&2
    exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
    sudo=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo="sudo -n"
else
    echo "ensure-browser: $chromium or $driver is missing and installing chromium chromium-driver needs root (no passwordless sudo here)" >&2
    exit 1
fi
echo "ensure-browser: installing chromium and chromium-driver with apt-get (once)" >&2
if ! { $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq chromium chromium-driver </dev/null >/dev/null; }; then
    echo "ensure-browser: apt-get could not install chromium chromium-driver" >&2
    exit 1
fi
present || { echo "ensure-browser: apt-get ran but $chromium or $driver is still missing" >&2; exit 1; }
