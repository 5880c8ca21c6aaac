#!/usr/bin/env bash
# The system packages (Debian/Ubuntu) that keeneye's set-up and tests need; the Makefile runs this first.
#
#   tools/system-deps.sh setup   the set-up (`make setup`, `make serve`): Python's venv module (Debian's
#                                python3 comes without it) and npm (the human models are npm packages)
#   tools/system-deps.sh test    ... and what the tests start: mosquitto (MQTT broker), GStreamer's RTSP
#                                server under Debian's /usr/bin/python3 (tests/rtsp/rig.py), Node.js >= 20
#                                (the AWS SDK for JavaScript v3 test client), Chromium and its WebDriver
#                                (headless, driven by Selenium: tests/console/)
#
# Silent and fast (dpkg-query only, no apt-get update) when everything is there. What is missing is installed
# with apt-get as root, or with sudo when it needs no password; otherwise it stops at once with one message
# naming the command to run. Environment: PYTHON (default python3), VENV (default .venv), OS_RELEASE (default
# /etc/os-release), KEENEYE_CHROMIUM and KEENEYE_CHROMEDRIVER (a browser and driver other than Debian's, as
# tests/console/browser.py reads them).
set -euo pipefail

group=${1:-test}
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
NODE_MAJOR=20
# What the tests start (tests/receivers.py, tests/rtsp/rig.py, tests/console/browser.py): plugins-good has
# qtdemux and rtph264pay; Debian's chromium and chromium-driver are the browser (none is downloaded).
TEST_PACKAGES=(mosquitto gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-good
    chromium chromium-driver)
# tests/pg.py runs Debian's PostgreSQL server (initdb, postgres) on 127.0.0.1 for the PostgreSQL tests.
TEST_PACKAGES+=(postgresql)
OS_RELEASE=${OS_RELEASE:-/etc/os-release}
os=$(. "$OS_RELEASE" 2>/dev/null && echo "${ID:-}:${VERSION_ID:-}") || os=
# Ubuntu has no Chromium in apt (its chromium-browser package installs the snap): apt-get is not asked for
# it there; the browser check at the end names what to run instead.
BROWSER_PACKAGES=(chromium chromium-driver)

case $group in
setup | test) ;;
*)
    echo "usage: $0 setup|test" >&2
    exit 2
    ;;
esac

installed() { [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == *" ok installed" ]]; }

missing_packages() {
    if [[ ! -x $VENV/bin/python ]] && ! "$PYTHON" -c 'import ensurepip' 2>/dev/null; then
        echo python3-venv
    fi
    command -v npm >/dev/null || echo npm
    if [[ $group == test ]]; then
        for p in "${TEST_PACKAGES[@]}"; do
            if [[ $os == ubuntu:* && " ${BROWSER_PACKAGES[*]} " == *" $p "* ]]; then continue; fi
            installed "$p" || echo "$p"
        done
    fi
}

if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
    # Not Debian/Ubuntu: nothing to check packages with; the tests that need one say which when it fails.
    echo "keeneye: no dpkg/apt-get here; the tests need mosquitto, GStreamer's RTSP server with PyGObject" \
        "for /usr/bin/python3, PostgreSQL's server (or KEENEYE_PG_BIN), Chromium with its chromedriver at" \
        "/usr/lib/chromium/chromium and /usr/bin/chromedriver, and Node.js >= $NODE_MAJOR with npm:" \
        "install your system's equivalents" >&2
    exit 0
fi

mapfile -t missing < <(missing_packages)
if ((${#missing[@]})); then
    if [[ $(id -u) == 0 ]]; then
        as_root=()
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        as_root=(sudo -n)
    else
        echo "keeneye: missing system packages: ${missing[*]}. Install them (needs root), then run make again:" >&2
        echo "    sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
        exit 1
    fi
    echo "keeneye: installing system packages: ${missing[*]}" >&2
    apt=("${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=300)
    "${apt[@]}" update >/dev/null
    "${apt[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null  # errors still show (stderr)
    mapfile -t still < <(missing_packages)
    if ((${#still[@]})); then
        echo "keeneye: apt-get did not install: ${still[*]}" >&2
        exit 1
    fi
fi

if [[ $group == test ]]; then
    version=$(node --version 2>/dev/null || echo none)
    major=${version#v}
    major=${major%%.*}
    if [[ ! $major =~ ^[0-9]+$ ]] || ((major < NODE_MAJOR)); then
        # Debian 13 and Ubuntu 24.04 ship Node.js >= 20; Debian 12 and Ubuntu 22.04 ship 18 and 12: for those,
        # NodeSource's packages (its documented set-up script adds its apt source, then apt-get installs).
        if [[ $os =~ ^(debian:1[3-9]|ubuntu:2[4-9]) ]]; then
            how="sudo apt-get install -y nodejs npm"
        else
            how="curl -fsSL https://deb.nodesource.com/setup_$NODE_MAJOR.x | sudo -E bash - && sudo apt-get install -y nodejs"
        fi
        echo "keeneye: the tests need Node.js >= $NODE_MAJOR (the AWS SDK for JavaScript v3); node here:" \
            "$version. Install it, then run make again:" >&2
        echo "    $how" >&2
        exit 1
    fi
fi

if [[ $group == test && $os == ubuntu:* ]]; then
    chromium=${KEENEYE_CHROMIUM:-/usr/lib/chromium/chromium}
    driver=${KEENEYE_CHROMEDRIVER:-/usr/bin/chromedriver}
    if [[ ! -x $chromium || ! -x $driver ]]; then
        echo "keeneye: the console tests need Chromium and its chromedriver ($chromium, $driver not found);" \
            "Ubuntu ships them as a snap. Install it and name its two programs, then run make again:" >&2
        echo "    sudo snap install chromium && export KEENEYE_CHROMIUM=/snap/bin/chromium" \
            "KEENEYE_CHROMEDRIVER=/snap/bin/chromium.chromedriver" >&2
        exit 1
    fi
fi
