# pids.sh - the processes a script started, stopped by their PID only
# (never by name), for the scripts of scripts/bench/ and scripts/experiments/.
#
# Source it after setting PIDS_WHO (the prefix of its messages, e.g.
# "bench"). Add every started process to PIDS; forget_pid PID once it is
# gone. On exit (or Ctrl-C) every process still in PIDS gets SIGTERM (twice
# with PIDS_TERM_TWICE=1: shopd then exits without draining its belt) and
# is waited for.

PIDS=()

pids_cleanup() {
    local p
    for p in "${PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
        [ "${PIDS_TERM_TWICE:-0}" = 1 ] && { kill -TERM "$p" 2>/dev/null || true; }
    done
    for p in "${PIDS[@]}"; do
        wait "$p" 2>/dev/null || true
    done
}
trap pids_cleanup EXIT
trap 'exit 130' INT TERM

forget_pid() {
    local keep=() p
    for p in "${PIDS[@]}"; do
        [ "$p" = "$1" ] || keep+=("$p")
    done
    PIDS=("${keep[@]+"${keep[@]}"}")
}

# stop_pid PID [SECONDS [SECOND_TERM_AFTER]]: SIGTERM (shopd drains), a
# second SIGTERM after SECOND_TERM_AFTER tenths of a second if given (shopd
# exits at once), SIGKILL if it still runs after SECONDS (default 30).
# Returns the process's exit status.
stop_pid() {
    local pid=$1 tenths=$((${2:-30} * 10)) again=${3:-} i rc=0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < tenths; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        [ -n "$again" ] && [ "$i" -eq "$again" ] && { kill -TERM "$pid" 2>/dev/null || true; }
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "${PIDS_WHO:-script}: pid $pid did not stop in ${2:-30} s, killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || rc=$?
    forget_pid "$pid"
    return "$rc"
}

# listening_port PID LOG: wait up to 10 s for the "listening on ADDR:PORT"
# line that PID (shopd, or the bench's baseline) writes to LOG, and print
# PORT. Fails, with the log on stderr, if PID exits or no line comes.
listening_port() {
    local pid=$1 log=$2 port='' i
    for ((i = 0; i < 200; i++)); do
        port=$(sed -n 's/.*listening on [0-9.]*:\([0-9]*\).*/\1/p' "$log" |
            head -n 1)
        [ -n "$port" ] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if [ -z "$port" ]; then
        echo "${PIDS_WHO:-script}: pid $pid is not listening; its log:" >&2
        cat "$log" >&2
        return 1
    fi
    echo "$port"
}
