/* The Schema Registry client and a catalog using it, against
 * tests/support/registry_server.py (a stand-in registry on 127.0.0.1) that counts
 * the requests it serves. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <cmocka.h>
#include <jansson.h>

#include "evkit/event.h"
#include "evkit/registry.h"
#include "registry_support.h"
#include "runtime_support.h"

#define FIRST_ID REGISTRY_FIRST_ID

static char errstr[1024];

static server_t srv; /* the plain one, shared by most tests */

static evk_config_t *config_for(const char *url) {
    evk_config_t *cfg = evk_config_new();
    assert_non_null(cfg);
    assert_int_equal(evk_config_set(cfg, "schema_registry.url", url), EVK_OK);
    return cfg;
}

static evk_registry_t *registry_at(const char *url) {
    evk_config_t *cfg = config_for(url);
    evk_registry_t *reg = NULL;
    if (evk_registry_new(cfg, &reg, errstr, sizeof errstr)) fail_msg("%s", errstr);
    evk_config_destroy(cfg);
    return reg;
}

static evk_catalog_t *catalog(const char *dir) {
    evk_catalog_t *cat = NULL;
    if (evk_catalog_load(dir, &cat, errstr, sizeof errstr)) fail_msg("%s: %s", dir, errstr);
    return cat;
}

static const char *evolution(const char *name) {
    static char path[512];
    snprintf(path, sizeof path, "%s/evolution/%s", getenv("EVK_TEST_DATA"), name);
    return path;
}

/* A schema no other test registers, so that each test sees fresh ids. */
static char *unique_schema(const char *name) {
    char *json = malloc(256);
    assert_non_null(json);
    snprintf(json, 256,
             "{\"type\":\"record\",\"name\":\"%s\",\"fields\":[{\"name\":\"a\","
             "\"type\":\"int\"}]}",
             name);
    return json;
}

static void assert_contains(const char *hay, const char *needle) {
    if (!strstr(hay, needle)) fail_msg("\"%s\" not in \"%s\"", needle, hay);
}

/* ---- the client ---- */

static void test_register_is_cached(void **state) {
    (void)state;
    evk_registry_t *reg = registry_at(srv.url);
    char *schema = unique_schema("Cached");
    int32_t id = 0, again = 0;
    size_t before = count(&srv, "POST /subjects/cached-value/versions");
    assert_int_equal(
        evk_registry_register(reg, "cached-value", schema, &id, errstr, sizeof errstr), EVK_OK);
    assert_true(id >= FIRST_ID);
    assert_int_equal(
        evk_registry_register(reg, "cached-value", schema, &again, errstr, sizeof errstr),
        EVK_OK);
    assert_int_equal(again, id);
    assert_int_equal(count(&srv, "POST /subjects/cached-value/versions"), before + 1);

    /* A second client registering the same schema gets the same id. */
    evk_registry_t *other = registry_at(srv.url);
    assert_int_equal(
        evk_registry_register(other, "cached-value", schema, &again, errstr, sizeof errstr),
        EVK_OK);
    assert_int_equal(again, id);
    evk_registry_destroy(other);
    evk_registry_destroy(reg);
    free(schema);
}

static void test_lookup(void **state) {
    (void)state;
    evk_registry_t *reg = registry_at(srv.url);
    char *known = unique_schema("Known"), *unknown = unique_schema("Unknown");
    int32_t id = 0, found = 0;
    assert_int_equal(
        evk_registry_register(reg, "lookup-value", known, &id, errstr, sizeof errstr), EVK_OK);
    evk_registry_t *fresh = registry_at(srv.url);
    assert_int_equal(
        evk_registry_lookup(fresh, "lookup-value", known, &found, errstr, sizeof errstr),
        EVK_OK);
    assert_int_equal(found, id);
    assert_int_equal(
        evk_registry_lookup(fresh, "lookup-value", unknown, &found, errstr, sizeof errstr),
        EVK_ERR_NOT_FOUND);
    assert_contains(errstr, "HTTP 404: Schema not found");
    assert_int_equal(
        evk_registry_lookup(fresh, "nobody-value", known, &found, errstr, sizeof errstr),
        EVK_ERR_NOT_FOUND);
    assert_contains(errstr, "Subject 'nobody-value' not found");
    evk_registry_destroy(fresh);
    evk_registry_destroy(reg);
    free(known);
    free(unknown);
}

static void test_schema_by_id_is_cached(void **state) {
    (void)state;
    evk_registry_t *writer = registry_at(srv.url), *reader = registry_at(srv.url);
    char *schema = unique_schema("ById");
    int32_t id = 0;
    const char *json = NULL, *again = NULL;
    char path[64];
    assert_int_equal(
        evk_registry_register(writer, "byid-value", schema, &id, errstr, sizeof errstr),
        EVK_OK);
    snprintf(path, sizeof path, "GET /schemas/ids/%d", (int)id);
    assert_int_equal(evk_registry_schema(reader, id, &json, errstr, sizeof errstr), EVK_OK);
    assert_string_equal(json, schema);
    assert_int_equal(evk_registry_schema(reader, id, &again, errstr, sizeof errstr), EVK_OK);
    assert_ptr_equal(again, json);
    assert_int_equal(count(&srv, path), 1);
    evk_registry_destroy(writer);
    evk_registry_destroy(reader);
    free(schema);
}

static void test_unknown_id(void **state) {
    (void)state;
    evk_registry_t *reg = registry_at(srv.url);
    const char *json = NULL;
    char want[160];
    assert_int_equal(evk_registry_schema(reg, 999, &json, errstr, sizeof errstr),
                     EVK_ERR_UNKNOWN_SCHEMA_ID);
    snprintf(want, sizeof want, "schema id 999 is not in the catalog nor in schema registry %s",
             srv.url);
    assert_string_equal(errstr, want);
    assert_null(json);
    evk_registry_destroy(reg);
}

/* A broken answer (not JSON, no "schema", a schema that does not parse) is
 * asked again twice, then is EVK_ERR_DECODE; a registry that is away (5xx)
 * stays EVK_ERR_IO at once, for the caller to wait. */
static void test_broken_answers(void **state) {
    (void)state;
    static const struct {
        int id;
        evk_err_t err;
        const char *why;
        size_t tries;
    } cases[] = {
        {9001, EVK_ERR_DECODE, "/schemas/ids/9001: answer is not JSON (asked 3 times)", 3},
        {9002, EVK_ERR_DECODE, "schema id 9002: answer has no \"schema\" (asked 3 times)", 3},
        {9003, EVK_ERR_DECODE, "schema id 9003: the schema does not parse: ", 3},
        {9004, EVK_ERR_IO, "HTTP 503: Service Unavailable", 1},
    };
    const char *const extra[] = {"--answer",      "9001=notjson",     "--answer",
                                 "9002=noschema", "--answer",         "9003=badschema",
                                 "--answer",      "9004=unavailable", NULL};
    server_t broken;
    char path[64];
    const char *json = NULL;
    server_start_with(&broken, "http", extra);
    evk_registry_t *reg = registry_at(broken.url);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(evk_registry_schema(reg, cases[i].id, &json, errstr, sizeof errstr),
                         cases[i].err);
        assert_contains(errstr, cases[i].why);
        snprintf(path, sizeof path, "GET /schemas/ids/%d", cases[i].id);
        assert_int_equal(count(&broken, path), cases[i].tries);
    }
    evk_registry_destroy(reg);
    server_stop(&broken);
}

static void test_registry_down(void **state) {
    (void)state;
    char url[64], want[96];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", rt_free_port());
    evk_registry_t *reg = registry_at(url);
    int32_t id;
    assert_int_equal(
        evk_registry_register(reg, "down-value", "\"int\"", &id, errstr, sizeof errstr),
        EVK_ERR_IO);
    snprintf(want, sizeof want, "schema registry %s: ", url);
    assert_contains(errstr, want);
    assert_contains(errstr, "onnect"); /* curl's "Failed to connect ..." */
    evk_registry_destroy(reg);
}

static void test_basic_auth(void **state) {
    (void)state;
    server_t locked;
    server_start(&locked, "alice:s3cret");
    evk_config_t *cfg = config_for(locked.url);
    evk_registry_t *reg = NULL;
    int32_t id;

    assert_int_equal(evk_registry_new(cfg, &reg, errstr, sizeof errstr), EVK_OK);
    assert_int_equal(
        evk_registry_register(reg, "auth-value", "\"int\"", &id, errstr, sizeof errstr),
        EVK_ERR_CONFIG);
    assert_contains(errstr,
                    "HTTP 401: Unauthorized (check schema_registry.basic.auth.user.info)");
    evk_registry_destroy(reg);

    /* In a file the setting is spelled with '_' (libconfig names have no dots). */
    assert_int_equal(evk_config_set(cfg, "schema_registry.basic_auth_user_info", "alice:wrong"),
                     EVK_OK);
    assert_int_equal(evk_registry_new(cfg, &reg, errstr, sizeof errstr), EVK_OK);
    assert_int_equal(
        evk_registry_register(reg, "auth-value", "\"int\"", &id, errstr, sizeof errstr),
        EVK_ERR_CONFIG);
    assert_null(strstr(errstr, "wrong"));
    evk_registry_destroy(reg);

    assert_int_equal(
        evk_config_set(cfg, "schema_registry.basic.auth.user.info", "alice:s3cret"), EVK_OK);
    assert_int_equal(evk_registry_new(cfg, &reg, errstr, sizeof errstr), EVK_OK);
    assert_int_equal(
        evk_registry_register(reg, "auth-value", "\"int\"", &id, errstr, sizeof errstr),
        EVK_OK);
    /* An error message after authenticating shows no credentials either. */
    const char *json;
    assert_int_equal(evk_registry_schema(reg, 4242, &json, errstr, sizeof errstr),
                     EVK_ERR_UNKNOWN_SCHEMA_ID);
    assert_null(strstr(errstr, "s3cret"));
    evk_registry_destroy(reg);
    evk_config_destroy(cfg);

    json_t *doc = served(&locked);
    json_t *last = json_array_get(json_object_get(doc, "authorization"), 2);
    assert_string_equal(json_string_value(last), "Basic YWxpY2U6czNjcmV0"); /* alice:s3cret */
    json_decref(doc);
    server_stop(&locked);
}

/* Credentials in the URL work too, and are cut out of messages. */
static void test_url_credentials_not_shown(void **state) {
    (void)state;
    server_t locked;
    char url[128];
    server_start(&locked, "bob:hunter2");
    snprintf(url, sizeof url, "http://bob:hunter2@%s", locked.url + strlen("http://"));
    evk_registry_t *reg = registry_at(url);
    const char *json;
    assert_int_equal(evk_registry_schema(reg, 4242, &json, errstr, sizeof errstr),
                     EVK_ERR_UNKNOWN_SCHEMA_ID);
    assert_contains(errstr, locked.url);
    assert_null(strstr(errstr, "hunter2"));
    evk_registry_destroy(reg);
    server_stop(&locked);
}

/* A password may hold '/' and '@' unescaped: curl gets it apart from the
 * URL, so it works, and no message shows any of it. */
static void test_url_password_with_slash_and_at(void **state) {
    (void)state;
    server_t locked;
    char url[128];
    int32_t id;
    const char *json;
    server_start(&locked, "bob:hu/nt@er2");
    snprintf(url, sizeof url, "http://bob:hu/nt@er2@%s", locked.url + strlen("http://"));
    evk_registry_t *reg = registry_at(url);
    if (evk_registry_register(reg, "slash-value", "\"int\"", &id, errstr, sizeof errstr))
        fail_msg("%s", errstr);
    assert_int_equal(evk_registry_schema(reg, 4242, &json, errstr, sizeof errstr),
                     EVK_ERR_UNKNOWN_SCHEMA_ID);
    assert_contains(errstr, locked.url);
    assert_null(strstr(errstr, "hu/nt"));
    assert_null(strstr(errstr, "er2"));
    evk_registry_destroy(reg);
    server_stop(&locked);
}

/* basic.auth.user.info from a file (keeps it out of the config and ps) or
 * from the environment. */
static void test_user_info_from_file_or_env(void **state) {
    (void)state;
    server_t locked;
    char path[] = "/tmp/evk-userinfo-XXXXXX";
    int32_t id;
    evk_registry_t *reg = NULL;
    server_start(&locked, "carol:fr0m-f1le");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "carol:fr0m-f1le\n", 16), 16);
    close(fd);
    evk_config_t *cfg = config_for(locked.url);
    assert_int_equal(evk_config_set(cfg, "schema_registry.basic_auth_user_info_file", path),
                     EVK_OK);
    assert_int_equal(evk_registry_new(cfg, &reg, errstr, sizeof errstr), EVK_OK);
    if (evk_registry_register(reg, "file-value", "\"int\"", &id, errstr, sizeof errstr))
        fail_msg("%s", errstr);
    evk_registry_destroy(reg);
    unlink(path);
    assert_int_equal(evk_registry_new(cfg, &reg, errstr, sizeof errstr), EVK_ERR_CONFIG);
    assert_contains(errstr, "schema_registry.basic_auth_user_info_file: /tmp/evk-userinfo-");
    assert_contains(errstr, ": No such file or directory");
    evk_config_destroy(cfg);

    cfg = evk_config_new();
    setenv("EVK_SCHEMA_REGISTRY_URL", locked.url, 1);
    setenv("EVK_SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO", "carol:fr0m-f1le", 1);
    assert_int_equal(evk_config_apply_env(cfg, errstr, sizeof errstr), EVK_OK);
    unsetenv("EVK_SCHEMA_REGISTRY_URL");
    unsetenv("EVK_SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO");
    assert_int_equal(evk_registry_new(cfg, &reg, errstr, sizeof errstr), EVK_OK);
    if (evk_registry_register(reg, "env-value", "\"int\"", &id, errstr, sizeof errstr))
        fail_msg("%s", errstr);
    evk_registry_destroy(reg);
    evk_config_destroy(cfg);
    server_stop(&locked);
}

/* An error body reaches a terminal with its control characters escaped. */
static void test_error_body_escaped(void **state) {
    (void)state;
    const char *const extra[] = {"--answer", "7001=ansi-json", "--answer", "7002=ansi-raw",
                                 NULL};
    server_t odd;
    const char *json;
    server_start_with(&odd, "http", extra);
    evk_registry_t *reg = registry_at(odd.url);
    assert_int_equal(evk_registry_schema(reg, 7001, &json, errstr, sizeof errstr), EVK_ERR_IO);
    assert_contains(errstr, "HTTP 500: \\x1b[2J\\x1b[31mboom\\u009b");
    assert_null(strchr(errstr, '\x1b'));
    assert_null(strstr(errstr, "\xc2\x9b"));
    assert_int_equal(evk_registry_schema(reg, 7002, &json, errstr, sizeof errstr), EVK_ERR_IO);
    assert_contains(errstr, "HTTP 502: \\x1b]0;owned\\x07\\x1b[2J<html>bad gateway</html>");
    assert_null(strchr(errstr, '\x1b'));
    assert_null(strchr(errstr, '\x07'));
    evk_registry_destroy(reg);
    server_stop(&odd);
}

/* The TLS settings reach curl: the CA verifies the server, and the client
 * certificate with its encrypted key passes the server's check. */
static void test_tls(void **state) {
    (void)state;
    char dir[] = "/tmp/evk-tls-XXXXXX", cmd[1024], path[4][160];
    static const char *const names[] = {"server.pem", "server.key", "client.pem", "client.key"};
    assert_non_null(mkdtemp(dir));
    for (int i = 0; i < 4; i++)
        snprintf(path[i], sizeof path[i], "%s/%s", dir, names[i]);
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
             "-addext subjectAltName=IP:127.0.0.1 -keyout %s -out %s 2>/dev/null && "
             "openssl req -x509 -newkey rsa:2048 -days 1 -subj /CN=evkit -passout pass:kp "
             "-keyout %s -out %s 2>/dev/null",
             path[1], path[0], path[3], path[2]);
    assert_int_equal(system(cmd), 0);
    const char *const extra[] = {"--tls", path[0], path[1], "--client-ca", path[2], NULL};
    server_t tls;
    server_start_with(&tls, "https", extra);

    evk_config_t *cfg = config_for(tls.url);
    evk_registry_t *reg = NULL;
    int32_t id;
    assert_int_equal(evk_registry_new(cfg, &reg, errstr, sizeof errstr), EVK_OK);
    assert_int_equal(
        evk_registry_register(reg, "tls-value", "\"int\"", &id, errstr, sizeof errstr),
        EVK_ERR_IO); /* no CA for a self-signed server */
    evk_registry_destroy(reg);
    evk_config_set(cfg, "schema_registry.ssl_ca_location", path[0]);
    evk_config_set(cfg, "schema_registry.ssl_certificate_location", path[2]);
    evk_config_set(cfg, "schema_registry.ssl_key_location", path[3]);
    evk_config_set(cfg, "schema_registry.ssl_key_password", "kp");
    assert_int_equal(evk_registry_new(cfg, &reg, errstr, sizeof errstr), EVK_OK);
    if (evk_registry_register(reg, "tls-value", "\"int\"", &id, errstr, sizeof errstr))
        fail_msg("%s", errstr);
    assert_true(id >= FIRST_ID);
    evk_registry_destroy(reg);
    evk_config_destroy(cfg);
    server_stop(&tls);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_settings(void **state) {
    (void)state;
    evk_config_t *cfg = evk_config_new();
    evk_registry_t *reg = NULL;
    char subject[128];
    assert_false(evk_registry_configured(cfg));
    assert_int_equal(evk_registry_new(cfg, &reg, errstr, sizeof errstr), EVK_ERR_CONFIG);
    assert_string_equal(errstr, "schema_registry.url: not set");

    assert_int_equal(evk_config_set(cfg, "schema_registry.url", "http://127.0.0.1:1/"), EVK_OK);
    assert_true(evk_registry_configured(cfg));
    assert_int_equal(evk_config_set(cfg, "schema_registry.subject_name_strategy", "bogus"),
                     EVK_OK);
    assert_int_equal(evk_registry_new(cfg, &reg, errstr, sizeof errstr), EVK_ERR_CONFIG);
    assert_contains(errstr, "\"bogus\" is not topic, record or topic_record");
    assert_int_equal(evk_config_set(cfg, "schema_registry.subject_name_strategy", "topic"),
                     EVK_OK);
    assert_int_equal(evk_config_set(cfg, "schema_registry.timeout_ms", "soon"), EVK_OK);
    assert_int_equal(evk_registry_new(cfg, &reg, errstr, sizeof errstr), EVK_ERR_CONFIG);
    assert_string_equal(errstr, "schema_registry.timeout_ms: expected integer, got \"soon\"");
    assert_int_equal(evk_config_set(cfg, "schema_registry.timeout_ms", "2000"), EVK_OK);

    evk_catalog_t *cat = catalog(getenv("EVK_SCHEMAS_DIR"));
    const evk_schema_t *placed = evk_catalog_find(cat, "OrderPlaced");
    static const char *const strategies[][2] = {
        {"topic", "orders-value"},
        {"record", "shop.orders.OrderPlaced"},
        {"topic_record", "orders-shop.orders.OrderPlaced"},
    };
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(
            evk_config_set(cfg, "schema_registry.subject.name.strategy", strategies[i][0]),
            EVK_OK);
        assert_int_equal(evk_registry_new(cfg, &reg, errstr, sizeof errstr), EVK_OK);
        assert_int_equal(evk_registry_subject(reg, placed, subject, sizeof subject), EVK_OK);
        assert_string_equal(subject, strategies[i][1]);
        evk_registry_destroy(reg);
    }
    evk_catalog_destroy(cat);
    evk_config_destroy(cfg);
}

/* ---- a catalog using the registry ---- */

static evk_catalog_t *catalog_with_registry(const char *dir, const char *url,
                                            int auto_register) {
    evk_config_t *cfg = config_for(url);
    evk_registry_t *reg = NULL;
    evk_catalog_t *cat = catalog(dir);
    if (!auto_register) evk_config_set(cfg, "schema_registry.auto_register", "false");
    assert_int_equal(evk_registry_new(cfg, &reg, errstr, sizeof errstr), EVK_OK);
    evk_config_destroy(cfg);
    if (evk_catalog_use_registry(cat, reg, errstr, sizeof errstr)) {
        evk_catalog_destroy(cat);
        return NULL;
    }
    return cat;
}

static int32_t frame_id(const void *frame) {
    const unsigned char *b = frame;
    return (int32_t)((uint32_t)b[1] << 24 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 8 | b[4]);
}

static void set_frame_id(void *frame, int32_t id) {
    unsigned char *b = frame;
    for (int i = 0; i < 4; i++)
        b[1 + i] = (unsigned char)((uint32_t)id >> (24 - 8 * i));
}

static void test_catalog_takes_registry_ids(void **state) {
    (void)state;
    evk_catalog_t *cat = catalog_with_registry(getenv("EVK_SCHEMAS_DIR"), srv.url, 1);
    assert_non_null(cat);
    const evk_schema_t *placed = evk_catalog_find(cat, "OrderPlaced");
    assert_true(evk_schema_id(placed) >= FIRST_ID);
    for (size_t i = 0; i < evk_catalog_count(cat); i++)
        assert_true(evk_schema_id(evk_catalog_at(cat, i)) >= FIRST_ID);

    evk_event_t *ev = evk_event_new(placed);
    void *frame;
    size_t len;
    assert_int_equal(evk_event_set_string(ev, "order_id", "o-r"), EVK_OK);
    assert_int_equal(evk_event_encode(ev, &frame, &len), EVK_OK);
    assert_int_equal(frame_id(frame), evk_schema_id(placed));
    evk_event_destroy(ev);

    /* A consumer that only looks ids up gets the same ones. */
    evk_catalog_t *consumer = catalog_with_registry(getenv("EVK_SCHEMAS_DIR"), srv.url, 0);
    assert_non_null(consumer);
    assert_int_equal(
        evk_event_decode(consumer, frame, len, NULL, 0, NULL, &ev, errstr, sizeof errstr),
        EVK_OK);
    assert_string_equal(evk_event_type(ev), "shop.orders.OrderPlaced");
    evk_event_destroy(ev);
    evk_catalog_destroy(consumer);
    evk_catalog_destroy(cat);
    free(frame);
}

static void test_lookup_only_needs_registered_schemas(void **state) {
    (void)state;
    server_t empty;
    server_start(&empty, NULL);
    char want[256];
    assert_null(catalog_with_registry(evolution("v2"), empty.url, 0));
    snprintf(want, sizeof want,
             "OrderPlaced (orders-value): schema registry %s: HTTP 404: Subject 'orders-value' "
             "not found.",
             empty.url);
    assert_string_equal(errstr, want);
    server_stop(&empty);
}

/* A registry that gives every schema the same id is refused at start: its
 * frames would not say which type they hold. */
static void test_same_id_for_every_schema(void **state) {
    (void)state;
    const char *const extra[] = {"--same-id", NULL};
    server_t broken;
    server_start_with(&broken, "http", extra);
    assert_null(catalog_with_registry(getenv("EVK_SCHEMAS_DIR"), broken.url, 1));
    assert_contains(errstr, "the schema registry gave shop.orders.OrderPlaced and ");
    assert_contains(errstr, " the same id 1000: ids must be unique per schema (is "
                            "schema_registry.url a Confluent Schema Registry?)");
    server_stop(&broken);
}

/* A frame of @p order in the OrderPlaced version of fixture @p version, with
 * the id the registry gave that version. */
static void frame_from_registry(const char *version, const char *order, void **frame,
                                size_t *len) {
    evk_catalog_t *v1 = catalog_with_registry(evolution(version), srv.url, 1);
    assert_non_null(v1);
    evk_event_t *ev = NULL;
    const evk_schema_t *s = evk_catalog_find(v1, "OrderPlaced");
    if (evk_event_from_json(s, order, strlen(order), &ev, errstr, sizeof errstr))
        fail_msg("%s", errstr);
    assert_int_equal(evk_event_encode(ev, frame, len), EVK_OK);
    evk_event_destroy(ev);
    evk_catalog_destroy(v1);
}

static void test_consumer_fetches_unknown_id(void **state) {
    (void)state;
    void *frame;
    size_t len;
    char path[64];
    frame_from_registry("v1",
                        "{\"order_id\":\"o-9\",\"customer_id\":\"c-9\",\"items\":[],"
                        "\"created_at\":1}",
                        &frame, &len);
    evk_catalog_t *v2 = catalog_with_registry(evolution("v2"), srv.url, 1);
    assert_non_null(v2);
    int32_t v1_id = frame_id(frame);
    assert_int_not_equal(v1_id, evk_schema_id(evk_catalog_find(v2, "OrderPlaced")));
    snprintf(path, sizeof path, "GET /schemas/ids/%d", (int)v1_id);
    size_t before = count(&srv, path);

    for (int i = 0; i < 2; i++) {
        evk_event_t *ev = NULL;
        const char *channel;
        if (evk_event_decode(v2, frame, len, NULL, 0, NULL, &ev, errstr, sizeof errstr))
            fail_msg("%s", errstr);
        assert_int_equal(evk_event_get_string(ev, "channel", &channel), EVK_OK);
        assert_string_equal(channel, "web");
        evk_event_destroy(ev);
    }
    assert_int_equal(count(&srv, path), before + 1);

    /* An id the registry does not know either. */
    evk_event_t *ev = NULL;
    set_frame_id(frame, 98765);
    assert_int_equal(
        evk_event_decode(v2, frame, len, NULL, 0, NULL, &ev, errstr, sizeof errstr),
        EVK_ERR_UNKNOWN_SCHEMA_ID);
    assert_contains(errstr, "schema id 98765 is not in the catalog nor in schema registry");
    evk_catalog_destroy(v2);
    free(frame);
}

static void test_incompatible_writer_from_registry(void **state) {
    (void)state;
    void *frame;
    size_t len;
    evk_event_t *ev = NULL;
    frame_from_registry("v3",
                        "{\"order_id\":\"o-9\",\"customer_id\":9,\"items\":[],"
                        "\"created_at\":1}",
                        &frame, &len);
    evk_catalog_t *v2 = catalog_with_registry(evolution("v2"), srv.url, 1);
    assert_non_null(v2);
    assert_int_equal(
        evk_event_decode(v2, frame, len, NULL, 0, NULL, &ev, errstr, sizeof errstr),
        EVK_ERR_SCHEMA);
    assert_null(ev);
    assert_contains(errstr,
                    "cannot be read as the catalog's version: customer_id: writer's type "
                    "long cannot be read as string");
    evk_catalog_destroy(v2);
    free(frame);
}

static int setup(void **state) {
    (void)state;
    server_start(&srv, NULL);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    server_stop(&srv);
    return 0;
}

int main(void) {
    unsetenv("EVK_SCHEMA_REGISTRY_URL");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_register_is_cached),
        cmocka_unit_test(test_lookup),
        cmocka_unit_test(test_schema_by_id_is_cached),
        cmocka_unit_test(test_unknown_id),
        cmocka_unit_test(test_registry_down),
        cmocka_unit_test(test_broken_answers),
        cmocka_unit_test(test_basic_auth),
        cmocka_unit_test(test_url_credentials_not_shown),
        cmocka_unit_test(test_url_password_with_slash_and_at),
        cmocka_unit_test(test_user_info_from_file_or_env),
        cmocka_unit_test(test_error_body_escaped),
        cmocka_unit_test(test_tls),
        cmocka_unit_test(test_settings),
        cmocka_unit_test(test_catalog_takes_registry_ids),
        cmocka_unit_test(test_lookup_only_needs_registered_schemas),
        cmocka_unit_test(test_same_id_for_every_schema),
        cmocka_unit_test(test_consumer_fetches_unknown_id),
        cmocka_unit_test(test_incompatible_writer_from_registry),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
