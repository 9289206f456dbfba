/*
 * orders.c - place orders and wait for the belt, over HTTP.
 */
#include "tests/lib/orders.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/lib/clock.h"
#include "tests/lib/json.h"

uint64_t buy_ok(struct http_conn *c, const char *json)
{
    struct http_resp r;
    int e =
        http_roundtrip(c, "POST", "/buy", "Content-Type: application/json\r\n",
                       json, strlen(json), &r);
    ck_assert_msg(e == 0, "POST /buy %s: %s", json, strerror(-e));
    ck_assert_msg(r.status == 202, "POST /buy %s: status %d, body %.300s", json,
                  r.status, r.body);
    cJSON *j = resp_json(&r);
    ck_assert_msg(j != NULL, "202 body not JSON: %s", r.body);
    double id = jnum(j, "order_id");
    ck_assert_msg(id >= 1 && id == (double)(uint64_t)id, "bad order_id %s",
                  r.body);
    uint64_t oid = (uint64_t)id;
    char want[96];
    snprintf(want, sizeof want, "{\"order_id\":%llu,\"status\":\"queued\"}",
             (unsigned long long)oid);
    ck_assert_msg(strcmp(r.body, want) == 0, "202 body is '%s', want '%s'",
                  r.body, want);
    snprintf(want, sizeof want, "/orders/%llu", (unsigned long long)oid);
    const char *loc = http_header(&r, "Location");
    ck_assert_msg(loc && strcmp(loc, want) == 0, "Location is %s, want %s",
                  loc ? loc : "(none)", want);
    ck_assert_msg(
        header_starts(http_header(&r, "Content-Type"), "application/json"),
        "202 Content-Type is not application/json");
    cJSON_Delete(j);
    http_resp_free(&r);
    return oid;
}

uint64_t buy_one_ok(unsigned port, const char *json)
{
    struct http_conn c;
    int e = http_connect(&c, port);
    ck_assert_msg(e == 0, "connect to port %u: %s", port, strerror(-e));
    uint64_t id = buy_ok(&c, json);
    http_close(&c);
    return id;
}

cJSON *wait_idle_ok(unsigned port, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    int delay = 2;
    for (;;) {
        cJSON *s = get_json_ok(port, "/stats");
        double depth = jnum(s, "queue.depth");
        double infl = jnum(s, "orders.in_flight");
        double acc = jnum(s, "orders.accepted");
        double proc = jnum(s, "orders.processed");
        if (depth == 0 && infl == 0 && acc == proc)
            return s;
        if (now_ms() >= deadline) {
            char *txt = cJSON_PrintUnformatted(s);
            char msg[1024];
            snprintf(msg, sizeof msg, "belt not idle after %d ms: %.800s",
                     timeout_ms, txt);
            free(txt);
            cJSON_Delete(s);
            ck_abort_msg("%s", msg);
        }
        cJSON_Delete(s);
        backoff_step(&delay, 50);
    }
}

cJSON *wait_order_final_ok(unsigned port, uint64_t id, int timeout_ms)
{
    char path[64];
    snprintf(path, sizeof path, "/orders/%llu", (unsigned long long)id);
    int64_t deadline = now_ms() + timeout_ms;
    int delay = 2;
    for (;;) {
        cJSON *o = get_json_ok(port, path);
        const char *st = jstr(o, "status");
        if (strcmp(st, "queued") != 0)
            return o;
        cJSON_Delete(o);
        ck_assert_msg(now_ms() < deadline,
                      "order %llu still queued after %d ms",
                      (unsigned long long)id, timeout_ms);
        backoff_step(&delay, 50);
    }
}
