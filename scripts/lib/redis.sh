# shellcheck shell=bash
# redis.sh - a private redis-server for the scripts of scripts/bench/,
# and its INFO. Source it after scripts/lib/pids.sh.
#
# start_redis DIR: Debian's redis-server on the unix socket DIR/redis.sock
# (no TCP port), its data and log in DIR, the append-only file on with
# fsync every second as compose.yaml runs it. Sets REDIS_SOCK and
# REDIS_PID (also added to PIDS) and waits up to 10 s for its PONG; fails,
# with its log on stderr, if none comes.
start_redis() {
    local dir=$1 i
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd) # redis-server opens its log after cd --dir
    REDIS_SOCK=$dir/redis.sock
    redis-server --port 0 --unixsocket "$REDIS_SOCK" --unixsocketperm 700 \
        --save '' --appendonly yes --appendfsync everysec --dir "$dir" \
        --logfile "$dir/redis.log" &
    REDIS_PID=$!
    PIDS+=("$REDIS_PID")
    for ((i = 0; i < 200; i++)); do
        [ "$(redis-cli -s "$REDIS_SOCK" ping 2>/dev/null)" = PONG ] && return 0
        kill -0 "$REDIS_PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "${PIDS_WHO:-script}: redis-server did not start; its log:" >&2
    cat "$dir/redis.log" >&2 2>/dev/null || true
    return 1
}

# redis_info SOCK: every INFO section of the redis-server on SOCK, one
# "field:value" a line (without INFO's carriage returns), on stdout.
redis_info() {
    redis-cli -s "$1" info all | tr -d '\r'
}
