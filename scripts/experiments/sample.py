#!/usr/bin/env python3
"""sample.py - watch one shopd during one point of `make experiment`.

    sample.py PORT WARMUP_S WINDOW_S INTERVAL_S TIMELINE_FILE [START]

Polls GET /metrics every INTERVAL_S seconds (one kept-alive connection)
from START (a Unix time, seconds, default now: run.sh passes the moment it
started the load, so Python's start-up counts as warm-up) until
START + WARMUP_S + WINDOW_S, writes every sample to TIMELINE_FILE
(t_s depth accepted rejected_full fulfilled, tab-separated), and prints one
line of key=value figures over the window [WARMUP_S, WARMUP_S + WINDOW_S]:

  window_s         the server's own uptime between the two snapshots
  offered_per_s    (accepted + rejected as queue_full) per second: the
                   load the client really offered
  accepted_per_s, rejected_per_s, fulfilled_per_s, processed_per_s
  reject_share     rejected / offered (the 503 rate), 0..1
  depth_mean, depth_max
                   belt depth over the samples in the window (the L of
                   Little's law)
  wait_mean_ms     mean queue wait of the orders taken in the window, from
                   the histogram's _sum and _count (the W of Little's law)
  little_depth     processed_per_s * wait_mean: the depth Little's law
                   L = lambda * W predicts from the other two figures
  wait_p50_ms, wait_p99_ms
                   GET /stats queue_wait percentiles at the end (these are
                   over every order since the server started, warm-up too)
  out_of_stock     orders that found no stock in the window (should be 0:
                   the experiment's catalog has huge stock)

Exits non-zero if the server could not be read at the start or the end.
Only talks to 127.0.0.1.
"""
import http.client
import json
import sys
import time

WANT = {
    "shopd_orders_accepted_total": "accepted",
    'shopd_orders_rejected_total{reason="queue_full"}': "rejected",
    "shopd_orders_processed_total": "processed",
    "shopd_orders_fulfilled_total": "fulfilled",
    "shopd_orders_out_of_stock_total": "out_of_stock",
    "shopd_queue_depth": "depth",
    "shopd_uptime_seconds": "uptime",
    "shopd_queue_wait_seconds_sum": "wait_sum",
    "shopd_queue_wait_seconds_count": "wait_count",
}


class Server:
    def __init__(self, port):
        self.port = port
        self.conn = None

    def get(self, path):
        for _ in range(2):  # one reconnect if the kept-alive one was closed
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(
                        "127.0.0.1", self.port, timeout=5)
                self.conn.request("GET", path)
                resp = self.conn.getresponse()
                body = resp.read().decode()
                if resp.status == 200:
                    return body
            except (OSError, http.client.HTTPException):
                pass
            if self.conn is not None:
                self.conn.close()
            self.conn = None
        return None

    def metrics(self):
        body = self.get("/metrics")
        if body is None:
            return None
        out = {}
        for line in body.splitlines():
            if line.startswith("#"):
                continue
            name, _, value = line.rpartition(" ")
            if name in WANT:
                out[WANT[name]] = float(value)
        return out if len(out) == len(WANT) else None


def main():
    if len(sys.argv) not in (6, 7):
        sys.exit(__doc__.split("\n\n")[1])
    port = int(sys.argv[1])
    warmup, window, interval = map(float, sys.argv[2:5])
    srv = Server(port)
    start = time.monotonic()
    if len(sys.argv) == 7:
        start -= max(0.0, time.time() - float(sys.argv[6]))
    first = last = None
    depths = []
    # The window ends WINDOW_S after its first sample: on a busy machine
    # Python may start after the warm-up is over, and the window must not
    # shrink for that (the load runs on until run.sh stops it).
    end = warmup + window
    with open(sys.argv[5], "w") as timeline:
        timeline.write("# t_s\tdepth\taccepted\trejected_full\tfulfilled\n")
        tick = 0
        while True:
            now = time.monotonic() - start
            m = srv.metrics()
            if m is not None:
                timeline.write("%.3f\t%d\t%d\t%d\t%d\n" % (
                    now, m["depth"], m["accepted"], m["rejected"],
                    m["fulfilled"]))
                if now >= warmup:
                    if first is None:
                        first = m
                        end = max(end, now + window)
                    last = m
                    depths.append(m["depth"])
            if now >= end:
                break
            tick = max(tick + 1, int(now / interval) + 1)
            pause = start + min(tick * interval, end) - time.monotonic()
            if pause > 0:
                time.sleep(pause)
    if first is None or last is None or last is first:
        sys.exit("sample.py: could not read /metrics in the window")
    stats = srv.get("/stats")
    qw = json.loads(stats)["latency_ms"]["queue_wait"] if stats else {}

    def rate(key):
        return (last[key] - first[key]) / secs

    secs = max(last["uptime"] - first["uptime"], 1e-3)
    offered = rate("accepted") + rate("rejected")
    taken = last["wait_count"] - first["wait_count"]
    wait_s = (last["wait_sum"] - first["wait_sum"]) / taken if taken else 0.0
    fig = {
        "window_s": "%.3f" % secs,
        "offered_per_s": "%.1f" % offered,
        "accepted_per_s": "%.1f" % rate("accepted"),
        "rejected_per_s": "%.1f" % rate("rejected"),
        "fulfilled_per_s": "%.1f" % rate("fulfilled"),
        "processed_per_s": "%.1f" % rate("processed"),
        "reject_share": "%.4f" % (rate("rejected") / offered if offered else 0),
        "depth_mean": "%.1f" % (sum(depths) / len(depths)),
        "depth_max": "%d" % max(depths),
        "wait_mean_ms": "%.3f" % (wait_s * 1000),
        "little_depth": "%.1f" % (rate("processed") * wait_s),
        "wait_p50_ms": "%.3f" % qw.get("p50", float("nan")),
        "wait_p99_ms": "%.3f" % qw.get("p99", float("nan")),
        "out_of_stock": "%d" % (last["out_of_stock"] - first["out_of_stock"]),
    }
    print(" ".join("%s=%s" % kv for kv in fig.items()))


if __name__ == "__main__":
    main()
