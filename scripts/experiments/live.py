#!/usr/bin/env python3
"""live.py - the shop floor, live (SPEC §11): drive one shopd under load.

    live.py PORT TOKEN_FILE OUT_DIR

While wrk (started by live.sh) offers a paced load above one elf's
capacity, this script

  * samples GET /metrics every 0.25 s into OUT_DIR/timeline.tsv
    (t_s depth accepted processed rejected_full injected_drop replays);
  * PATCHes /admin/floor on a schedule, writing each moment and its label
    into OUT_DIR/events.tsv: 8 elves (the belt drains), pause (it fills,
    503s start), go on, drop_rate 0.2 for 10 s, faults end;
  * meanwhile runs a keyed client: orders one by one, each with its own
    Idempotency-Key, retried with the same key when the connection closes
    without an answer (a drop), until it gets a 202;
  * at the end checks that every key got exactly one order id, all
    distinct, that the replays the client saw equal the drops the server
    injected into its orders, and that the §1 invariants hold once idle;
    prints one line of key=value results. Exits non-zero if a check fails.

Only talks to 127.0.0.1.
"""
import http.client
import json
import sys
import threading
import time

SAMPLE_S = 0.25
SCHEDULE = [  # (seconds after start, label, patch)
    (8, "8 elves", {"workers": 8}),
    (16, "pause", {"paused": True}),
    (22, "go on", {"paused": False}),
    (26, "drop 0.2", {"faults": {"drop_rate": 0.2, "for_s": 10}}),
    (36, "faults end", {"faults": None}),
]
DURATION_S = 42

WANT = {
    "shopd_queue_depth": "depth",
    "shopd_orders_accepted_total": "accepted",
    "shopd_orders_processed_total": "processed",
    'shopd_orders_rejected_total{reason="queue_full"}': "rejected",
    'shopd_faults_injected_total{kind="drop"}': "drops",
    "shopd_idempotent_replays_total": "replays",
}


def request(port, method, path, body=None, headers=None, timeout=10):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read().decode()
    finally:
        conn.close()


def metrics(port):
    _, _, text = request(port, "GET", "/metrics")
    out = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        if name in WANT:
            out[WANT[name]] = float(value)
    return out


class Keyed(threading.Thread):
    """Orders one by one, each with its own key, retried until a 202."""

    def __init__(self, port, stop):
        super().__init__(daemon=True)
        self.port, self.stop = port, stop
        self.ids, self.replays, self.retries, self.errors = {}, 0, 0, 0

    def run(self):
        n = 0
        body = json.dumps({"product": "apple", "quantity": 1})
        while not self.stop.is_set():
            key = "live-%d" % n
            n += 1
            while not self.stop.is_set():
                try:
                    st, hd, txt = request(self.port, "POST", "/buy", body,
                                          {"Idempotency-Key": key}, 5)
                except (http.client.HTTPException, OSError):
                    self.retries += 1  # dropped: the same key again
                    continue
                if st == 202:
                    self.ids[key] = json.loads(txt)["order_id"]
                    if hd.get("Idempotent-Replayed") == "true":
                        self.replays += 1
                    break
                if st == 503:  # belt full or paused: retry in a moment
                    time.sleep(0.05)
                    continue
                self.errors += 1
                break
            time.sleep(0.02)


def main():
    port, token_file, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    with open(token_file) as f:
        token = f.readline().strip()
    auth = {"Authorization": "Bearer " + token}
    t0 = time.time()
    stop = threading.Event()
    keyed = None
    schedule = list(SCHEDULE)
    with open(out + "/timeline.tsv", "w") as tl, \
            open(out + "/events.tsv", "w") as ev:
        tl.write("t_s\tdepth\taccepted\tprocessed\trejected\tdrops\treplays\n")
        while True:
            t = time.time() - t0
            if t >= DURATION_S:
                break
            while schedule and t >= schedule[0][0]:
                _, label, patch = schedule.pop(0)
                st, _, txt = request(port, "PATCH", "/admin/floor",
                                     json.dumps(patch), auth)
                if st != 200:
                    print("live: PATCH %s: %d %s" % (patch, st, txt),
                          file=sys.stderr)
                    return 1
                ev.write("%.2f\t%s\n" % (t, label))
                ev.flush()
                if label.startswith("drop"):
                    keyed = Keyed(port, stop)
                    keyed.start()
            m = metrics(port)
            tl.write("%.2f\t%d\t%d\t%d\t%d\t%d\t%d\n" % (
                t, m.get("depth", 0), m.get("accepted", 0),
                m.get("processed", 0), m.get("rejected", 0),
                m.get("drops", 0), m.get("replays", 0)))
            tl.flush()
            time.sleep(max(0.0, SAMPLE_S - (time.time() - t0 - t)))
    stop.set()
    if keyed:
        keyed.join(10)
    return report(port, keyed)


def report(port, keyed):
    deadline = time.time() + 30
    while True:
        _, _, txt = request(port, "GET", "/stats")
        s = json.loads(txt)
        o, q = s["orders"], s["queue"]
        if q["depth"] == 0 and o["in_flight"] == 0 or time.time() > deadline:
            break
        time.sleep(0.1)
    ok = o["accepted"] == o["processed"] + q["depth"] + o["in_flight"]
    ok = ok and o["processed"] == o["fulfilled"] + o["out_of_stock"]
    ids = list(keyed.ids.values()) if keyed else []
    once = len(ids) == len(set(ids))
    drops = s["floor"]["faults_injected"]["drop"]
    print("live: accepted=%d processed=%d invariants=%s keyed_orders=%d "
          "distinct_ids=%s client_retries=%d client_replays=%d "
          "server_drops=%d idempotent_replays=%d other_errors=%d" % (
              o["accepted"], o["processed"], "ok" if ok else "BROKEN",
              len(ids), "yes" if once else "NO",
              keyed.retries if keyed else 0, keyed.replays if keyed else 0,
              drops, s["idempotency"]["replayed"],
              keyed.errors if keyed else 0))
    return 0 if ok and once and (not keyed or keyed.errors == 0) else 1


if __name__ == "__main__":
    sys.exit(main())
