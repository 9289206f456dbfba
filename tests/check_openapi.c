/*
 * check_openapi.c - the OpenAPI document compiled into the binary
 * (server/api/openapi.json, served as GET /openapi.json) against the route
 * table: every route is in the document with the methods it serves, every
 * path of the document is routed, every method the document says a path
 * does not serve answers 405 with the documented Allow, every answer the
 * handlers give to a plain request is one the document lists, and every
 * error code of the error table is in the document.
 */
#include "server/api/api.h"
#include "server/api/errors.h"
#include "server/api/internal.h"
#include "shop/shop.h"

#include <cJSON.h>
#include <check.h>

#include "tests/suites.h"
#include <stdio.h>
#include <string.h>

static struct shop *shop;
static struct app app;
static cJSON *doc;

static const struct product catalog[] = {
    {"apple", "Apple", 50, 10},
};

/* The methods an OpenAPI path item may hold, in the order Allow names
 * them. */
static const char *const methods[] = {"get",   "head",   "post",    "put",
                                      "patch", "delete", "options", "trace"};
#define NMETHODS (sizeof(methods) / sizeof(methods[0]))

static void setup(void)
{
    struct shop_config sc = {
        .workers = 1, .queue_capacity = 4, .order_history = 16};
    ck_assert_int_eq(shop_create(&sc, catalog, 1, &shop), 0);
    memset(&app, 0, sizeof(app));
    app.shop = shop;
    app.limits.max_body = 4096;
    app.limits.max_quantity = 1000;
    app.limits.http_threads = 1;
    doc = cJSON_ParseWithLength(openapi_json,
                                (size_t)(openapi_json_end - openapi_json));
    ck_assert_msg(doc != NULL, "server/api/openapi.json is not JSON");
}

static void teardown(void)
{
    cJSON_Delete(doc);
    doc = NULL;
    shop_destroy(shop);
    shop = NULL;
}

static const cJSON *item(const cJSON *o, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(o, key);
}

/* What a local "$ref" ("#/components/responses/X") points to, or `o`
 * itself when it is no reference. */
static const cJSON *deref(const cJSON *o)
{
    const cJSON *ref = item(o, "$ref");
    if (!cJSON_IsString(ref))
        return o;
    ck_assert_msg(strncmp(ref->valuestring, "#/", 2) == 0, "%s",
                  ref->valuestring);
    char path[256];
    snprintf(path, sizeof(path), "%s", ref->valuestring + 2);
    const cJSON *at = doc;
    char *save = NULL;
    for (char *seg = strtok_r(path, "/", &save); seg != NULL;
         seg = strtok_r(NULL, "/", &save))
        at = item(at, seg);
    ck_assert_msg(at != NULL, "dangling %s", ref->valuestring);
    return at;
}

/* A path with every "{name}" written as "{}": "/orders/{}". */
static void template_of_doc(const char *path, char *out, size_t len)
{
    size_t n = 0;
    for (const char *p = path; *p != '\0' && n + 3 < len; p++) {
        out[n++] = *p;
        if (*p == '{') {
            out[n++] = '}';
            p = strchr(p, '}');
            ck_assert_ptr_nonnull(p);
        }
    }
    out[n] = '\0';
}

static void template_of_route(const struct api_route_info *r, char *out,
                              size_t len)
{
    snprintf(out, len, "%s%s%s", r->path, r->param ? "{}" : "",
             r->param && r->suffix ? r->suffix : "");
}

/* A concrete path for a document path: {sku} is "apple", others "1". */
static void concrete(const char *path, char *out, size_t len)
{
    size_t n = 0;
    for (const char *p = path; *p != '\0' && n + 8 < len; p++) {
        if (*p != '{') {
            out[n++] = *p;
            continue;
        }
        const char *v = strncmp(p, "{sku}", 5) == 0 ? "apple" : "1";
        n += (size_t)snprintf(out + n, len - n, "%s", v);
        p = strchr(p, '}');
        ck_assert_ptr_nonnull(p);
    }
    out[n] = '\0';
}

/* An operation documented only to say the path does not serve it. */
static bool not_served(const cJSON *op)
{
    const cJSON *r = item(op, "responses");
    return cJSON_GetArraySize(r) == 1 && item(r, "405") != NULL;
}

/* The methods a path item serves, in the form of an Allow header. */
static void served(const cJSON *path_item, char *out, size_t len)
{
    out[0] = '\0';
    for (size_t i = 0; i < NMETHODS; i++) {
        const cJSON *op = item(path_item, methods[i]);
        if (op == NULL || not_served(op))
            continue;
        size_t n = strlen(out);
        snprintf(out + n, len - n, "%s", n ? ", " : "");
        n = strlen(out);
        for (const char *m = methods[i]; *m && n + 1 < len; m++)
            out[n++] = (char)(*m - 'a' + 'A');
        out[n] = '\0';
    }
}

/* The route row whose template is `tpl`, or -1. */
static int route_of(const char *tpl, struct api_route_info *r)
{
    for (size_t i = 0; i < api_route_count(); i++) {
        char t[128];
        api_route_at(i, r);
        template_of_route(r, t, sizeof(t));
        if (strcmp(t, tpl) == 0)
            return (int)i;
    }
    return -1;
}

static void call(const char *method, const char *path,
                 struct http_response *res)
{
    struct http_request req = {.method = method, .path = path};
    if (strcmp(method, "POST") == 0 || strcmp(method, "PATCH") == 0) {
        req.body = "{}";
        req.body_len = 2;
    }
    api_handle(&app, &req, res);
}

static const char *header(const struct http_response *res, const char *name)
{
    for (size_t i = 0; i < res->nheaders; i++)
        if (strcmp(res->headers[i].name, name) == 0)
            return res->headers[i].value;
    return NULL;
}

START_TEST(test_openapi_is_3_1_and_whole)
{
    /* The blob is the file and a NUL: nothing cut or added. */
    ck_assert_int_eq(openapi_json_end[0], '\0');
    const cJSON *v = item(doc, "openapi");
    ck_assert(cJSON_IsString(v));
    ck_assert_int_eq(strncmp(v->valuestring, "3.1.", 4), 0);
    ck_assert(cJSON_IsObject(item(doc, "paths")));
    ck_assert(cJSON_IsObject(
        item(item(item(doc, "components"), "securitySchemes"), "adminBearer")));
}
END_TEST

START_TEST(test_openapi_documents_every_route)
{
    const cJSON *paths = item(doc, "paths");
    for (size_t i = 0; i < api_route_count(); i++) {
        struct api_route_info r;
        char tpl[128], allow[128];
        api_route_at(i, &r);
        template_of_route(&r, tpl, sizeof(tpl));
        const cJSON *p = NULL;
        cJSON_ArrayForEach(p, paths)
        {
            char t[128];
            template_of_doc(p->string, t, sizeof(t));
            if (strcmp(t, tpl) == 0)
                break;
        }
        ck_assert_msg(p != NULL, "route %s is not in openapi.json", tpl);
        served(p, allow, sizeof(allow));
        ck_assert_msg(strcmp(allow, r.allow) == 0,
                      "%s serves %s, openapi.json says %s", p->string, r.allow,
                      allow);
    }
}
END_TEST

START_TEST(test_openapi_every_path_is_routed)
{
    const cJSON *p = NULL;
    cJSON_ArrayForEach(p, item(doc, "paths"))
    {
        char tpl[128], allow[128];
        struct api_route_info r;
        template_of_doc(p->string, tpl, sizeof(tpl));
        ck_assert_msg(route_of(tpl, &r) >= 0,
                      "%s of openapi.json is not routed", p->string);
        served(p, allow, sizeof(allow));
        ck_assert_str_eq(allow, r.allow);
    }
}
END_TEST

/* Call one documented operation; its answer must be documented, and a
 * method documented as not served must answer 405 with its Allow. */
static void check_operation(const char *path, const char *method,
                            const cJSON *op)
{
    char url[128], upper[16], status[8];
    size_t n = 0;
    for (; method[n] && n + 1 < sizeof(upper); n++)
        upper[n] = (char)(method[n] - 'a' + 'A');
    upper[n] = '\0';
    concrete(path, url, sizeof(url));
    struct http_response res;
    call(upper, url, &res);
    snprintf(status, sizeof(status), "%u", res.status);
    const cJSON *answer = item(item(op, "responses"), status);
    ck_assert_msg(answer != NULL, "%s %s answered %u: not in openapi.json",
                  upper, url, res.status);
    if (not_served(op)) {
        const cJSON *allow =
            item(item(item(deref(answer), "headers"), "Allow"), "schema");
        ck_assert_uint_eq(res.status, 405);
        ck_assert(cJSON_IsString(item(allow, "const")));
        ck_assert_ptr_nonnull(header(&res, "Allow"));
        ck_assert_str_eq(header(&res, "Allow"),
                         item(allow, "const")->valuestring);
    } else {
        ck_assert_msg(res.status != 405, "%s %s answered 405", upper, url);
    }
    http_response_release(&res);
}

START_TEST(test_openapi_answers_are_documented)
{
    const cJSON *p = NULL;
    unsigned checked = 0;
    cJSON_ArrayForEach(p, item(doc, "paths"))
    {
        for (size_t i = 0; i < NMETHODS; i++) {
            const cJSON *op = item(p, methods[i]);
            if (op == NULL)
                continue;
            check_operation(p->string, methods[i], op);
            checked++;
        }
    }
    ck_assert_uint_gt(checked, 50);
}
END_TEST

START_TEST(test_openapi_lists_every_error_code)
{
    const cJSON *codes =
        item(item(item(item(item(item(doc, "components"), "schemas"), "Error"),
                       "properties"),
                  "error"),
             "enum");
    ck_assert(cJSON_IsArray(codes));
    for (int e = 0; e < HTTP_ERR_COUNT; e++) {
        const char *code = http_err_code((enum http_err)e);
        const cJSON *c = NULL;
        cJSON_ArrayForEach(c, codes)
        {
            if (cJSON_IsString(c) && strcmp(c->valuestring, code) == 0)
                break;
        }
        ck_assert_msg(c != NULL, "error code %s is not in openapi.json", code);
    }
}
END_TEST

Suite *openapi_suite(void)
{
    Suite *s = suite_create("openapi");
    TCase *tc = tcase_create("document");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_openapi_is_3_1_and_whole);
    tcase_add_test(tc, test_openapi_documents_every_route);
    tcase_add_test(tc, test_openapi_every_path_is_routed);
    tcase_add_test(tc, test_openapi_answers_are_documented);
    tcase_add_test(tc, test_openapi_lists_every_error_code);
    suite_add_tcase(s, tc);
    return s;
}
