#!/bin/sh
# deps.sh - install the Debian packages that are missing, and only those.
#
# Each argument is NAME:PACKAGE. NAME is a command on PATH, a pkg-config
# module or an installed Debian package; if none is found, PACKAGE is
# installed with apt-get (after one
# apt-get update), using sudo when not root. Used by `make run`/`make test`
# so that both work on a fresh Debian machine.
set -eu

missing=""
for spec in "$@"; do
    name=${spec%%:*}
    pkg=${spec#*:}
    if command -v "$name" >/dev/null 2>&1; then
        continue
    fi
    if command -v pkg-config >/dev/null 2>&1 &&
        pkg-config --exists "$name" 2>/dev/null; then
        continue
    fi
    if dpkg-query -W -f='${Status}' "$name" 2>/dev/null |
        grep -q 'install ok installed'; then
        continue
    fi
    missing="$missing $pkg"
done
[ -z "$missing" ] && exit 0

echo "deps: installing$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# --no-install-recommends keeps prometheus (for promtool) small.
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
