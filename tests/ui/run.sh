#!/usr/bin/env bash
# tests/ui/run.sh - the dashboard in a real browser (`make test-ui`).
#
# Installs what is missing (Debian chromium, node + npm, playwright-core from
# tests/ui/package-lock.json), builds ./shopd if needed, then runs
# dashboard.test.mjs with node's test runner. Each test starts its own shopd
# on a free 127.0.0.1 port and stops it by PID. Screenshots go to build/ui/.
#
# Environment: SHOPD_BIN (default ./shopd), UI_OUT (default build/ui),
# CHROMIUM_BIN (default /usr/bin/chromium), UI_HEADED=1 to watch it.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# A relative SHOPD_BIN (make passes ./shopd) is relative to the caller.
case ${SHOPD_BIN:-} in
    "" | /*) ;;
    *) SHOPD_BIN=$PWD/$SHOPD_BIN ;;
esac
cd "$root"

say() { printf 'test-ui: %s\n' "$*" >&2; }

sudo_() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_updated=
apt_install() {
    if [ -z "$apt_updated" ]; then
        sudo_ env DEBIAN_FRONTEND=noninteractive apt-get update -q
        apt_updated=1
    fi
    sudo_ env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "$@"
}

chromium_bin=${CHROMIUM_BIN:-/usr/bin/chromium}
if [ ! -x "$chromium_bin" ]; then
    say "installing chromium (Debian package)"
    apt_install chromium
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    say "installing nodejs and npm (Debian packages)"
    apt_install nodejs npm
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 18 ]; then
    say "node $(node --version) is too old: need 18 or later (fetch, node:test)"
    exit 1
fi

if [ ! -d "$here/node_modules/playwright-core" ]; then
    say "installing playwright-core (npm ci)"
    (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi

shopd=${SHOPD_BIN:-$root/shopd}
if [ -z "${SHOPD_BIN:-}" ]; then
    # make is a no-op when ./shopd is up to date (dashboard.html included).
    make -s -C "$root" all
fi
if [ ! -x "$shopd" ]; then
    say "no shopd binary at $shopd"
    exit 1
fi

export SHOPD_BIN=$shopd CHROMIUM_BIN=$chromium_bin
export UI_OUT=${UI_OUT:-$root/build/ui}
mkdir -p "$UI_OUT"

# Chromium aborts in-flight requests with net::ERR_NETWORK_CHANGED whenever
# a network interface comes or goes (a container starting on the same box).
# The test only needs loopback, so run it, chromium and every shopd in a
# private network namespace with nothing but `lo` when that is possible
# (root, or unprivileged user namespaces). UI_NETNS=0 turns this off.
runner=()
if [ "${UI_NETNS:-1}" != 0 ] && command -v unshare >/dev/null 2>&1 &&
    command -v ip >/dev/null 2>&1; then
    if unshare --net true 2>/dev/null; then
        runner=(unshare --net)
    elif unshare --map-root-user --net true 2>/dev/null; then
        runner=(unshare --map-root-user --net)
    fi
fi
if [ ${#runner[@]} -gt 0 ]; then
    say "private network namespace (loopback only)"
else
    say "host network namespace (no unshare --net here)"
fi

cd "$here"
log=$UI_OUT/test-ui.log
set +e
if [ ${#runner[@]} -gt 0 ]; then
    "${runner[@]}" sh -c 'ip link set lo up && exec "$@"' sh \
        node --test --test-reporter=spec dashboard.test.mjs 2>&1 | tee "$log"
else
    node --test --test-reporter=spec dashboard.test.mjs 2>&1 | tee "$log"
fi
status=${PIPESTATUS[0]}
set -e
pass=$(sed -n 's/^ℹ pass \([0-9]*\)$/\1/p' "$log" | tail -n 1)
fail=$(sed -n 's/^ℹ fail \([0-9]*\)$/\1/p' "$log" | tail -n 1)
echo "${pass:-0} passed, ${fail:-?} failed"
if [ "$status" -eq 0 ]; then
    say "screenshots in ${UI_OUT#"$root"/}/, log in ${log#"$root"/}"
else
    say "FAILED (exit $status); log in ${log#"$root"/}"
fi
exit "$status"
