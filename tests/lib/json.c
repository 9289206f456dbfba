/*
 * json.c - parse and check shopd's JSON answers.
 */
#include "tests/lib/json.h"

#include <check.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

cJSON *resp_json(const struct http_resp *r)
{
    if (!r->body)
        return NULL;
    return cJSON_ParseWithLength(r->body, r->body_len);
}

const cJSON *json_at(const cJSON *root, const char *path)
{
    const cJSON *node = root;
    char key[128];
    while (node && *path) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        if (n >= sizeof key)
            return NULL;
        memcpy(key, path, n);
        key[n] = '\0';
        node = cJSON_IsObject(node)
                   ? cJSON_GetObjectItemCaseSensitive(node, key)
                   : NULL;
        path += n + (dot ? 1 : 0);
        if (!dot)
            break;
    }
    return node;
}

/* The node at `path`; fails the test unless `is(node)` holds. */
static const cJSON *typed_at(const cJSON *root, const char *path,
                             cJSON_bool (*is)(const cJSON *), const char *type)
{
    const cJSON *n = json_at(root, path);
    ck_assert_msg(n && is(n), "JSON field %s missing or not a %s", path, type);
    return n;
}

double jnum(const cJSON *root, const char *path)
{
    return typed_at(root, path, cJSON_IsNumber, "number")->valuedouble;
}

const char *jstr(const cJSON *root, const char *path)
{
    return typed_at(root, path, cJSON_IsString, "string")->valuestring;
}

const char *expect_error(const struct http_resp *r, int status,
                         const char *code)
{
    static char msg[512];
    ck_assert_msg(r->status == status,
                  "expected status %d (%s), got %d; body: %.300s", status, code,
                  r->status, r->body ? r->body : "");
    const char *ct = http_header(r, "Content-Type");
    ck_assert_msg(header_starts(ct, "application/json"),
                  "error %d %s: Content-Type is %s, not application/json",
                  status, code, ct ? ct : "(none)");
    cJSON *j = resp_json(r);
    ck_assert_msg(j && cJSON_IsObject(j),
                  "error %d %s: body is not a JSON "
                  "object: %.300s",
                  status, code, r->body ? r->body : "");
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
    ck_assert_msg(cJSON_IsString(e) && cJSON_IsString(m),
                  "error body lacks string error/message: %.300s", r->body);
    ck_assert_msg(cJSON_GetArraySize(j) == 2,
                  "error body has fields beyond error/message: %.300s",
                  r->body);
    ck_assert_msg(strcmp(e->valuestring, code) == 0,
                  "expected error code %s, got %s (status %d, message %s)",
                  code, e->valuestring, r->status, m->valuestring);
    ck_assert_msg(m->valuestring[0] != '\0', "error %s: empty message", code);
    snprintf(msg, sizeof msg, "%s", m->valuestring);
    cJSON_Delete(j);
    return msg;
}

cJSON *get_json_ok(unsigned port, const char *path)
{
    struct http_resp r;
    int e = http_do(port, "GET", path, NULL, NULL, 0, &r);
    ck_assert_msg(e == 0, "GET %s: %s", path, strerror(-e));
    ck_assert_msg(r.status == 200, "GET %s: status %d, body %.300s", path,
                  r.status, r.body);
    const char *ct = http_header(&r, "Content-Type");
    ck_assert_msg(header_starts(ct, "application/json"),
                  "GET %s: Content-Type %s", path, ct ? ct : "(none)");
    cJSON *j = resp_json(&r);
    ck_assert_msg(j != NULL, "GET %s: body is not JSON: %.300s", path, r.body);
    http_resp_free(&r);
    return j;
}

bool is_rfc3339_utc(const char *s)
{
    regex_t re;
    if (!s || regcomp(&re,
                      "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T"
                      "([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
                      "(\\.[0-9]+)?Z$",
                      REG_EXTENDED | REG_NOSUB) != 0)
        return false;
    bool ok = regexec(&re, s, 0, NULL, 0) == 0;
    regfree(&re);
    return ok && strncmp(s, "2020", 4) >= 0;
}
