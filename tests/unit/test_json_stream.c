/* The DOM-free JSON reader (lib/src/schema/json_stream.c) against the DOM path
 * (evk_event_from_json()): the same verdict, message and bytes for every
 * input, and a fast path that never takes what the DOM path rejects. */
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "codec.h"
#include "evkit/event.h"

static evk_catalog_t *cat, *kitchen_cat;

static int load_catalogs(void **state) {
    char err[512] = "", dir[1024];
    (void)state;
    snprintf(dir, sizeof dir, "%s/stream", getenv("EVK_TEST_DATA"));
    if (evk_catalog_load(getenv("EVK_SCHEMAS_DIR"), &cat, err, sizeof err) ||
        evk_catalog_load(dir, &kitchen_cat, err, sizeof err)) {
        fprintf(stderr, "catalog: %s\n", err);
        return -1;
    }
    return 0;
}

static int free_catalogs(void **state) {
    (void)state;
    evk_catalog_destroy(cat);
    evk_catalog_destroy(kitchen_cat);
    return 0;
}

static const evk_schema_t *schema(const char *type) {
    const evk_schema_t *s = evk_catalog_find(cat, type);
    if (!s) s = evk_catalog_find(kitchen_cat, type);
    assert_non_null(s);
    return s;
}

static evk_json_reader_t *reader(const char *type) {
    evk_json_reader_t *r = NULL;
    assert_int_equal(evk_json_reader_new(schema(type), &r), EVK_OK);
    return r;
}

/* Both paths on @p json: the same code and message, or the same frame and
 * key. Returns whether the fast path took it alone. */
static int check_same_with(evk_json_reader_t *r, const evk_event_t *dom, evk_err_t dom_rc,
                           const char *dom_err, const char *json, size_t len) {
    const unsigned char *body;
    size_t body_len;
    void *ref = NULL, *frame = NULL;
    size_t ref_len = 0, frame_len;
    if (!dom_rc) assert_int_equal(evk_event_encode(dom, &ref, &ref_len), EVK_OK);
    evk_err_t fast = evk__json_reader_fast(r, json, len, &body, &body_len);
    if (fast == EVK_OK) {
        if (dom_rc)
            fail_msg("fast path took what the DOM path rejects: %.*s (%s)", (int)len, json,
                     dom_err);
        assert_int_equal(body_len, ref_len - EVK_FRAME_HEADER_SIZE);
        assert_memory_equal(body, (char *)ref + EVK_FRAME_HEADER_SIZE, body_len);
    }
    char *key = (char *)1, err[512] = "";
    evk_err_t rc =
        evk_json_reader_frame(r, json, len, &frame, &frame_len, &key, err, sizeof err);
    if (rc != dom_rc)
        fail_msg("%.*s: reader %s \"%s\", DOM %s \"%s\"", (int)len, json, evk_err_name(rc), err,
                 evk_err_name(dom_rc), dom_err);
    if (rc) {
        assert_string_equal(err, dom_err);
        assert_null(frame);
        assert_null(key);
    } else {
        assert_int_equal(frame_len, ref_len);
        assert_memory_equal(frame, ref, ref_len);
        if (evk_event_key(dom))
            assert_string_equal(key, evk_event_key(dom));
        else
            assert_null(key);
    }
    free(ref);
    free(frame);
    free(key);
    return fast == EVK_OK;
}

static int check_same_len(const char *type, const char *json, size_t len) {
    evk_event_t *dom = NULL;
    char dom_err[512] = "";
    evk_err_t dom_rc =
        evk_event_from_json(schema(type), json, len, &dom, dom_err, sizeof dom_err);
    evk_json_reader_t *r = reader(type);
    int fast = check_same_with(r, dom, dom_rc, dom_err, json, len);
    evk_json_reader_destroy(r);
    evk_event_destroy(dom);
    return fast;
}

static int check_same(const char *type, const char *json) {
    return check_same_len(type, json, strlen(json));
}

static void assert_fast(const char *type, const char *json) {
    if (!check_same(type, json)) fail_msg("fast path did not take %s", json);
}

#define ORDER_HEAD "{\"order_id\":\"o-1\",\"customer_id\":\"c-1\","
#define ORDER_TAIL ",\"currency\":\"EUR\",\"created_at\":1}"
#define LINE(q) "{\"sku\":\"s\",\"quantity\":" q ",\"unit_price_cents\":5}"

/* Every input of tests/unit/test_json.c and test_event.c's samples. */
static const char *const catalog_cases[][2] = {
    {"OrderPlaced", ORDER_HEAD "\"items\":[" LINE("2") "]" ORDER_TAIL},
    {"StockLevel", "{\"available\":3,\"sku\":\"sku-7\"}"},
    {"StockLevel", " {\n  \"sku\" : \"a\",\n  \"available\" : 9007199254740993\n}\n"},
    {"OrderPlaced", ORDER_HEAD "\"items\":[" LINE("\"2\"") "]" ORDER_TAIL},
    {"OrderPlaced", ORDER_HEAD "\"items\":[" LINE("2") "," LINE("1.5") "]" ORDER_TAIL},
    {"OrderPlaced", ORDER_HEAD "\"items\":[" LINE("true") "]" ORDER_TAIL},
    {"OrderPlaced", ORDER_HEAD "\"items\":[" LINE("null") "]" ORDER_TAIL},
    {"OrderPlaced", ORDER_HEAD "\"items\":{}" ORDER_TAIL},
    {"OrderPlaced", ORDER_HEAD "\"items\":[[]]" ORDER_TAIL},
    {"StockLevel", "{\"sku\":7,\"available\":1}"},
    {"StockLevel", "{\"sku\":\"a\",\"available\":1.0}"},
    {"OrderStatus", "{\"order_id\":\"o\",\"customer_id\":\"c\",\"status\":1,\"reason\":null}"},
    {"OrderStatus",
     "{\"order_id\":\"o\",\"customer_id\":\"c\",\"status\":\"PAID\",\"reason\":5}"},
    {"OrderPlaced", "[1,2]"},
    {"OrderPlaced", "\"o-1\""},
    {"OrderPlaced", "null"},
    {"OrderPlaced", "{\"order_id\":\"o-1\",\"items\":[],\"created_at\":1}"},
    {"OrderPlaced", ORDER_HEAD "\"items\":[{\"sku\":\"s\",\"quantity\":1}]" ORDER_TAIL},
    {"OrderPlaced", ORDER_HEAD "\"items\":[],\"coupon\":\"X\"" ORDER_TAIL},
    {"OrderPlaced",
     ORDER_HEAD "\"items\":[{\"sku\":\"s\",\"quantity\":1,\"unit_price_cents\":1,"
                "\"colour\":\"red\"}]" ORDER_TAIL},
    {"OrderPlaced", ORDER_HEAD "\"items\":[" LINE("1") "," LINE("3000000000") "]" ORDER_TAIL},
    {"OrderPlaced", ORDER_HEAD "\"items\":[" LINE("-2147483649") "]" ORDER_TAIL},
    {"OrderPlaced",
     ORDER_HEAD "\"items\":[" LINE("2147483647") "," LINE("-2147483648") "]" ORDER_TAIL},
    {"StockLevel", "{\"sku\":\"a\",\"available\":99999999999999999999}"},
    {"OrderStatus",
     "{\"order_id\":\"o\",\"customer_id\":\"c\",\"status\":\"FOO\",\"reason\":null}"},
    {"OrderCancelled",
     "{\"order_id\":\"o\",\"customer_id\":\"c\",\"status\":\"paid\",\"reason\":\"r\"}"},
    {"OrderPlaced", "{\"order_id\": \"o-1\""},
    {"OrderPlaced", "{\"a\":1,}"},
    {"OrderPlaced", ""},
    {"OrderPlaced", "{\"order_id\":\"a\",\"order_id\":\"b\"}"},
    {"OrderPlaced", "{\"order_id\":\"o\",\"customer_id\":\"c\",\"items\":[],\"created_at\":5}"},
    {"OrderStatus", "{\"order_id\":\"o\",\"customer_id\":\"c\",\"status\":\"PAID\"}"},
    {"StockRejected", "{\"order_id\":\"o\",\"customer_id\":\"c\",\"reason\":\"r\"}"},
    {"StockRejected",
     "{\"order_id\":\"o\",\"customer_id\":\"c\",\"reason\":\"r\",\"sku\":\"sku-1\"}"},
    {"StockRejected",
     "{\"order_id\":\"o\",\"customer_id\":\"c\",\"reason\":\"r\",\"sku\":null}"},
    {"StockLevel", "{\"sku\":\"\\u00e9\\/\\ud83d\\ude00\",\"available\":0}"},
    {"StockLevel", "{\"sku\":\"a\\u0000b\",\"available\":1}"},
    {"StockLevel", "{\"sku\":\"a\",\"available\":9223372036854775807}"},
    {"StockLevel", "{\"sku\":\"sku-1\",\"available\":-9223372036854775808}"},
    {"StockReleased", "{\"order_id\":\"o-1\",\"reason\":\"payment declined\",\"items\":[]}"},
    {"PaymentDeclined",
     "{\"order_id\":\"o-1\",\"customer_id\":\"c-1\",\"amount_cents\":3500,\"currency\":\"EUR\","
     "\"reason\":\"credit limit\",\"items\":[{\"sku\":\"sku-1\",\"quantity\":2},{\"sku\":"
     "\"sku-2\",\"quantity\":2147483647}]}"},
    {"NotificationSent",
     "{\"notification_id\":\"n-1\",\"order_id\":\"o-1\",\"customer_id\":\"c-1\",\"template\":"
     "\"order_confirmed\",\"channel\":\"file\",\"message\":\"B\xc3\xa4r \\\"quoted\\\"\\n\\t"
     "\xe2\x82\xac \xf0\x9f\x98\x80 \\\\ \\u0001\"}"},
    /* keys evk_key_check() refuses: the fast path leaves them to the DOM */
    {"StockLevel", "{\"sku\":\"\\b\\f\\r\\u001f\",\"available\":0}"},
    {"StockLevel", "{\"sku\":\"a\\u007f\",\"available\":0}"},
    {"StockLevel", "{\"sku\":\"a\xc2\x85\",\"available\":0}"},
    {"StockLevel", "{\"sku\":\"\",\"available\":0}"},
    {"StockLevel", "{\"sku\":\"\xc2\xa0\",\"available\":0}"},
    {"OrderPlaced", "{\"order_id\":\"\",\"customer_id\":\"c\",\"items\":[],\"created_at\":5}"},
    {"OrderStatus",
     "{\"order_id\":\"o-1\",\"customer_id\":\"c-1\",\"status\":\"PAID\",\"total_cents\":3500,"
     "\"reason\":\"x\",\"history\":[{\"type\":\"shop.orders.OrderPlaced\",\"source\":"
     "\"evk-order\",\"time\":\"2026-11-24T14:03:05.123Z\",\"event_id\":\"e-1\"}]}"},
};

/* Every Avro type, defaults, unions picking by value, and the JSON edge
 * cases where jansson has the last word. */
static const char *const kitchen_cases[] = {
    "{\"id\":\"k\"}",
    "{\"grid\":[],\"list\":null,\"inner\":{\"s\":\"q\",\"n\":1},\"attrs\":{},\"tags\":[],"
    "\"choice\":\"x\",\"num\":2,\"opt\":\"o\",\"e\":\"HEARTS\",\"fx\":\"wxyz\",\"b\":\"\","
    "\"d\":-0.0,\"f\":2,\"l\":-1,\"i\":0,\"flag\":false,\"id\":\"rev\"}",
    "{\"id\":\"k\",\"num\":3000000000}",
    "{\"id\":\"k\",\"num\":-2147483649}",
    "{\"id\":\"k\",\"num\":1.5}",
    "{\"id\":\"k\",\"num\":1e2}",
    "{\"id\":\"k\",\"num\":\"x\"}",
    "{\"id\":\"k\",\"num\":true}",
    "{\"id\":\"k\",\"num\":null}",
    "{\"id\":\"k\",\"choice\":\"SPADES\"}",
    "{\"id\":\"k\",\"choice\":\"other\"}",
    "{\"id\":\"k\",\"choice\":3}",
    "{\"id\":\"k\",\"opt\":5}",
    "{\"id\":\"k\",\"b\":\"\\u00e9a\\u0001\",\"fx\":\"\\u00ff\\u00fe\\u00fd!\"}",
    "{\"id\":\"k\",\"b\":\"\\u0100\"}",
    "{\"id\":\"k\",\"b\":\"\\u0000\"}",
    "{\"id\":\"k\",\"fx\":\"abc\"}",
    "{\"id\":\"k\",\"fx\":\"abcde\"}",
    "{\"id\":\"k\",\"e\":\"CLUBS\"}",
    "{\"id\":\"k\",\"e\":1}",
    "{\"id\":\"k\",\"f\":3.4028234663852886e38}",
    "{\"id\":\"k\",\"f\":1e39}",
    "{\"id\":\"k\",\"f\":-1e39}",
    "{\"id\":\"k\",\"f\":1e-50}",
    "{\"id\":\"k\",\"d\":1e308,\"f\":0.1}",
    "{\"id\":\"k\",\"d\":5e-324}",
    "{\"id\":\"k\",\"d\":1e999}",
    "{\"id\":\"k\",\"d\":-12345678901234567890}",
    "{\"id\":\"k\",\"d\":9007199254740993}",
    "{\"id\":\"k\",\"d\":1E+2}",
    "{\"id\":\"k\",\"d\":\"1\"}",
    "{\"id\":\"k\",\"i\":2147483648}",
    "{\"id\":\"k\",\"i\":-0}",
    "{\"id\":\"k\",\"l\":01}",
    "{\"id\":\"k\",\"l\":1.}",
    "{\"id\":\"k\",\"l\":-}",
    "{\"id\":\"k\",\"l\":.5}",
    "{\"id\":\"k\",\"l\":1e}",
    "{\"id\":\"k\",\"flag\":tru}",
    "{\"id\":\"k\",\"flag\":truex}",
    "{\"id\":\"k\",\"flag\":1}",
    "{\"id\":\"k\",\"attrs\":{\"a\":1,\"b\":-2,\"\":3}}",
    "{\"id\":\"k\",\"attrs\":{\"a\":1,\"a\":2}}",
    "{\"id\":\"k\",\"attrs\":{\"a\":\"x\"}}",
    "{\"id\":\"k\",\"attrs\":[]}",
    "{\"id\":\"k\",\"attrs\":{\"a\":1,}}",
    "{\"id\":\"k\",\"tags\":[\"a\",\"b\"]}",
    "{\"id\":\"k\",\"tags\":[1]}",
    "{\"id\":\"k\",\"tags\":[\"a\",]}",
    "{\"id\":\"k\",\"tags\":[,]}",
    "{\"id\":\"k\",\"grid\":[{\"a\":null,\"b\":{\"n\":1}},{}]}",
    "{\"id\":\"k\",\"grid\":[{\"a\":{\"n\":\"x\"}}]}",
    "{\"id\":\"k\",\"grid\":[[]]}",
    "{\"id\":\"k\",\"list\":{\"v\":1,\"next\":{\"v\":2,\"next\":null}}}",
    "{\"id\":\"k\",\"list\":{\"v\":1,\"next\":{\"v\":\"x\"}}}",
    "{\"id\":\"k\",\"inner\":{}}",
    "{\"id\":\"k\",\"inner\":{\"\\u006e\":4}}",
    "{\"id\":\"k\",\"inner\":{\"n\":4,\"zz\":1}}",
    "{\"id\":\"k\",\"zzz\":1}",
    "{\"id\":\"k\",\"id\":\"k\"}",
    "{\"i\":1}",
    "{\"id\":\"\\ud83d\\ude00 \\u20ac \\\" \\\\ \\/ \\b\\f\\n\\r\\t\"}",
    "{\"id\":\"\\udc00\"}",
    "{\"id\":\"\\ud800x\"}",
    "{\"id\":\"\\ud800\\u0041\"}",
    "{\"id\":\"\\x\"}",
    "{\"id\":\"\\u12\"}",
    "{\"id\":\"tab\there\"}",
    "{\"id\":\"\xff\"}",
    "{\"id\":\"\xc3\"}",
    "{\"id\":\"\xed\xa0\x80\"}",
    "{\"id\":\"unterminated}",
    "{\"id\":\"k\"} x",
    "{\"id\":\"k\"}\n\t ",
    "{\"id\" \"k\"}",
    "{id:\"k\"}",
    "{\"id\":\"k\"",
    "{",
    "}",
    "[]",
    "true",
    "  ",
    "{\"id\":\"k\",\"list\":{\"v\":1,\"next\":[]}}",
};

static void test_catalog_cases(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof catalog_cases / sizeof catalog_cases[0]; i++)
        check_same(catalog_cases[i][0], catalog_cases[i][1]);
}

static void test_kitchen_cases(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof kitchen_cases / sizeof kitchen_cases[0]; i++)
        check_same("Kitchen", kitchen_cases[i]);
}

/* Valid input that is not unusual must not pay for the DOM. */
static void test_fast_path_taken(void **state) {
    (void)state;
    assert_fast("OrderPlaced", catalog_cases[0][1]);
    assert_fast("OrderPlaced", "{\"order_id\":\"o\",\"customer_id\":\"c\",\"items\":[],"
                               "\"created_at\":5}");
    assert_fast("StockLevel", catalog_cases[2][1]);
    assert_fast("StockLevel", catalog_cases[35][1]);
    assert_fast("OrderStatus", catalog_cases[31][1]);
    assert_fast("Kitchen", kitchen_cases[0]);
    assert_fast("Kitchen", kitchen_cases[1]);
    assert_fast("Kitchen", "{\"id\":\"k\",\"grid\":[{\"a\":null,\"b\":{\"n\":1}},{}],"
                           "\"attrs\":{\"a\":1,\"b\":-2}}");
    assert_fast("StockLevel", "{\"sku\":\"\xc2\xa0\",\"available\":0}");
    /* a \u0000, a duplicate key or a key evk_key_check() refuses is the DOM
     * path's to judge */
    assert_false(check_same("StockLevel", "{\"sku\":\"a\\u0000b\",\"available\":1}"));
    assert_false(check_same("StockLevel", "{\"sku\":\"a\\u0001b\",\"available\":1}"));
    assert_false(check_same("StockLevel", "{\"sku\":\"\",\"available\":1}"));
}

/* Deeper than the fast path tracks, yet valid: the DOM path takes it. */
static void test_deep_nesting(void **state) {
    (void)state;
    char json[4096] = "{\"id\":\"k\",\"list\":";
    for (int i = 0; i < 80; i++)
        strcat(json, "{\"v\":1,\"next\":");
    strcat(json, "null");
    for (int i = 0; i < 80; i++)
        strcat(json, "}");
    strcat(json, "}");
    assert_false(check_same("Kitchen", json));
}

/* Only len bytes are read, as evk_event_from_json() does. */
static void test_length_bounded(void **state) {
    (void)state;
    const char *json = "{\"sku\":\"a\",\"available\":1}garbage";
    assert_true(check_same_len("StockLevel", json, strlen(json) - 7));
    assert_false(check_same_len("StockLevel", json, 10));
}

static uint64_t next_random(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* One random edit: the places where a hand-written lexer goes wrong. */
static size_t mutate(char *buf, size_t len, size_t cap, uint64_t *rng) {
    static const char alphabet[] = "{}[]:,\"\\0123456789-+.eEtrufalsn u\x80\xc3\xa9\x01";
    size_t at = len ? next_random(rng) % len : 0;
    char ch = alphabet[next_random(rng) % (sizeof alphabet - 1)];
    switch (next_random(rng) % 3) {
    case 0:
        if (len) memmove(buf + at, buf + at + 1, len - at - 1);
        return len ? len - 1 : 0;
    case 1:
        if (len + 1 >= cap) return len;
        memmove(buf + at + 1, buf + at, len - at);
        buf[at] = ch;
        return len + 1;
    default:
        if (len) buf[at] = ch;
        return len;
    }
}

static void fuzz_one(const char *type, const char *seed, uint64_t *rng, int rounds) {
    evk_json_reader_t *r = reader(type);
    char buf[1024];
    for (int i = 0; i < rounds; i++) {
        size_t len = strlen(seed);
        assert_true(len < sizeof buf);
        memcpy(buf, seed, len);
        for (int k = 1 + (int)(next_random(rng) % 3); k > 0; k--)
            len = mutate(buf, len, sizeof buf, rng);
        evk_event_t *dom = NULL;
        char dom_err[512] = "";
        evk_err_t dom_rc =
            evk_event_from_json(schema(type), buf, len, &dom, dom_err, sizeof dom_err);
        check_same_with(r, dom, dom_rc, dom_err, buf, len);
        evk_event_destroy(dom);
    }
    evk_json_reader_destroy(r);
}

static void test_mutations(void **state) {
    (void)state;
    uint64_t rng = 42;
    for (size_t i = 0; i < sizeof catalog_cases / sizeof catalog_cases[0]; i++)
        fuzz_one(catalog_cases[i][0], catalog_cases[i][1], &rng, 300);
    fuzz_one("Kitchen", kitchen_cases[1], &rng, 3000);
    fuzz_one("Kitchen",
             "{\"id\":\"k\",\"grid\":[{\"a\":null,\"b\":{\"n\":1}}],\"num\":1.5,"
             "\"attrs\":{\"a\":1},\"list\":{\"v\":1,\"next\":null}}",
             &rng, 3000);
}

/* evk-order publish: absent fields take per-line values. */
static void test_reader_defaults(void **state) {
    (void)state;
    evk_json_reader_t *r = reader("OrderPlaced");
    char err[256] = "";
    assert_int_equal(evk_json_reader_set_default(r, "order_id", "\"o-9\"", err, sizeof err),
                     EVK_OK);
    assert_int_equal(evk_json_reader_set_default(r, "created_at", "17", err, sizeof err),
                     EVK_OK);
    const char *names[] = {"order_id", "created_at"}, *values[] = {"\"o-9\"", "17"};
    const char *lines[] = {
        "{\"customer_id\":\"c\",\"items\":[" LINE("1") "]}",
        "{\"customer_id\":\"c\",\"items\":[],\"order_id\":\"mine\",\"created_at\":3}",
        "{\"customer_id\":\"c\",\"items\":[" LINE("\"1\"") "]}",
        "{\"items\":[]}",
        "{\"customer_id\":\"c\",\"items\":[],\"coupon\":1}",
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        evk_event_t *dom = NULL;
        char dom_err[512] = "";
        evk_err_t rc =
            evk__event_from_json_with(schema("OrderPlaced"), lines[i], strlen(lines[i]), names,
                                      values, 2, &dom, dom_err, sizeof dom_err);
        int fast = check_same_with(r, dom, rc, dom_err, lines[i], strlen(lines[i]));
        assert_int_equal(fast, i < 2);
        evk_event_destroy(dom);
    }
    assert_int_equal(evk_json_reader_set_default(r, "order_id", "5", err, sizeof err),
                     EVK_ERR_VALIDATION);
    assert_string_equal(err, "order_id: default 5 does not fit the field");
    assert_int_equal(evk_json_reader_set_default(r, "coupon", "1", err, sizeof err),
                     EVK_ERR_NOT_FOUND);
    assert_string_equal(err, "coupon: no such field");
    /* a default key is held to evk_key_check() like any other */
    assert_int_equal(evk_json_reader_set_default(r, "order_id", "\"\"", err, sizeof err),
                     EVK_OK);
    const char *line = "{\"customer_id\":\"c\",\"items\":[]}";
    void *frame = NULL;
    size_t frame_len;
    char *key = NULL;
    assert_int_equal(
        evk_json_reader_frame(r, line, strlen(line), &frame, &frame_len, &key, err, sizeof err),
        EVK_ERR_VALIDATION);
    assert_string_equal(err, "order_id: key must not be empty");
    assert_null(frame);
    evk_json_reader_destroy(r);
}

static void test_key_from_schema_default(void **state) {
    (void)state;
    assert_fast("Keyed", "{\"x\":1}");
    assert_fast("Keyed", "{\"id\":\"mine\",\"x\":1}");
    assert_fast("Keyed", "{\"x\":1,\"id\":\"\\u00e9\"}");
    check_same("Keyed", "{\"id\":\"mine\"}");
}

static void test_frame_headers(void **state) {
    (void)state;
    rd_kafka_headers_t *h = NULL, *ref = NULL;
    evk_event_t *ev = evk_event_new(schema("OrderPlaced"));
    evk_event_set_source(ev, "src");
    evk_event_set_correlation_id(ev, "o-1");
    assert_int_equal(evk_event_headers(ev, &ref), EVK_OK);
    assert_int_equal(evk_frame_headers(schema("OrderPlaced"), "src", "o-1", NULL, &h), EVK_OK);
    assert_int_equal(rd_kafka_header_cnt(h), rd_kafka_header_cnt(ref));
    for (size_t i = 0; i < rd_kafka_header_cnt(h); i++) {
        const char *name, *ref_name;
        const void *v, *ref_v;
        size_t n, ref_n;
        assert_int_equal(rd_kafka_header_get_all(h, i, &name, &v, &n), 0);
        assert_int_equal(rd_kafka_header_get_all(ref, i, &ref_name, &ref_v, &ref_n), 0);
        assert_string_equal(name, ref_name);
        if (strcmp(name, "ce_id") && strcmp(name, "ce_time")) {
            assert_int_equal(n, ref_n);
            assert_memory_equal(v, ref_v, n);
        }
    }
    rd_kafka_headers_destroy(h);
    rd_kafka_headers_destroy(ref);
    evk_event_destroy(ev);
}

static evk_err_t kitchen_f(const char *number, float *out, char *err, size_t err_size) {
    char json[128];
    snprintf(json, sizeof json, "{\"id\":\"k\",\"f\":%s}", number);
    check_same("Kitchen", json);
    evk_event_t *ev = NULL;
    evk_err_t rc =
        evk_event_from_json(schema("Kitchen"), json, strlen(json), &ev, err, err_size);
    if (rc) return rc;
    double d;
    assert_int_equal(evk_event_get_double(ev, "f", &d), EVK_OK);
    *out = (float)d;
    char *text = NULL;
    size_t len;
    assert_int_equal(evk_event_to_json(ev, &text, &len), EVK_OK);
    evk_event_t *back = NULL;
    rc = evk_event_from_json(schema("Kitchen"), text, len, &back, err, err_size);
    if (rc) fail_msg("own JSON does not read back: %s: %s", err, text);
    assert_int_equal(evk_event_get_double(back, "f", &d), EVK_OK);
    assert_true((float)d == *out);
    free(text);
    evk_event_destroy(back);
    evk_event_destroy(ev);
    return EVK_OK;
}

/* A float field takes every number that rounds to a finite float, and what
 * evkit writes for it reads back: the shortest text of FLT_MAX is a little
 * above FLT_MAX as a double (the fuzzer found the reader refusing it). */
static void test_float_limits(void **state) {
    (void)state;
    static const char *const fits[] = {"3.4028235e+38", "-3.4028235e+38",
                                       "3.4028234663852886e38", "3.4028235677973362e38"};
    static const char *const beyond[] = {"3.4028235677973366e38", "-3.4028235677973366e38",
                                         "1e39"};
    char err[256];
    float f;
    for (size_t i = 0; i < sizeof fits / sizeof *fits; i++) {
        if (kitchen_f(fits[i], &f, err, sizeof err)) fail_msg("%s: %s", fits[i], err);
        assert_true(fabsf(f) == FLT_MAX);
    }
    for (size_t i = 0; i < sizeof beyond / sizeof *beyond; i++) {
        assert_int_equal(kitchen_f(beyond[i], &f, err, sizeof err), EVK_ERR_VALIDATION);
        assert_non_null(strstr(err, "f: "));
        assert_non_null(strstr(err, " out of range for float"));
    }
    evk_event_t *ev = evk_event_new(schema("Kitchen"));
    assert_int_equal(evk_event_set_double(ev, "f", -3.4028235e38), EVK_OK);
    double d;
    assert_int_equal(evk_event_get_double(ev, "f", &d), EVK_OK);
    assert_true(d == -FLT_MAX);
    assert_int_equal(evk_event_set_double(ev, "f", 3.4028235677973366e38), EVK_ERR_VALIDATION);
    assert_int_equal(evk_event_set_double(ev, "f", INFINITY), EVK_ERR_VALIDATION);
    assert_int_equal(evk_event_set_double(ev, "f", NAN), EVK_ERR_VALIDATION);
    evk_event_destroy(ev);
}

static void test_bad_arguments(void **state) {
    (void)state;
    evk_json_reader_t *r = NULL;
    void *frame;
    size_t len;
    char *key;
    assert_int_equal(evk_json_reader_new(NULL, &r), EVK_ERR_INVALID_ARG);
    assert_int_equal(evk_json_reader_new(schema("StockLevel"), NULL), EVK_ERR_INVALID_ARG);
    assert_int_equal(evk_json_reader_frame(NULL, "{}", 2, &frame, &len, &key, NULL, 0),
                     EVK_ERR_INVALID_ARG);
    evk_json_reader_destroy(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_catalog_cases),   cmocka_unit_test(test_kitchen_cases),
        cmocka_unit_test(test_fast_path_taken), cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_length_bounded),  cmocka_unit_test(test_mutations),
        cmocka_unit_test(test_reader_defaults), cmocka_unit_test(test_key_from_schema_default),
        cmocka_unit_test(test_frame_headers),   cmocka_unit_test(test_float_limits),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, load_catalogs, free_catalogs);
}
