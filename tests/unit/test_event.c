/* Event object, field paths, Confluent frames and CloudEvents headers:
 * round trips for every catalog type, every malformed-input class with its
 * exact error, interop with python3-avro, and a consume through librdkafka. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>

#include "codec_support.h"
#include <librdkafka/rdkafka_mock.h> /* after rdkafka.h, which event.h includes */

/* One value of every catalog type, compact and in schema order, as
 * evk_event_to_json() writes it. */
static const struct {
    const char *type, *json;
} samples[] = {
    {"OrderPlaced",
     "{\"order_id\":\"o-1\",\"customer_id\":\"c-1\",\"items\":[{\"sku\":\"sku-1\",\"quantity\":"
     "2,"
     "\"unit_price_cents\":1250},{\"sku\":\"sku-2\",\"quantity\":-1,\"unit_price_cents\":"
     "9007199254740993}],\"currency\":\"EUR\",\"created_at\":1795615385123}"},
    {"StockReserved", "{\"order_id\":\"o-1\",\"customer_id\":\"c-1\",\"total_cents\":3500,"
                      "\"currency\":\"EUR\",\"items\":[{\"sku\":\"sku-1\",\"quantity\":2}]}"},
    {"StockRejected", "{\"order_id\":\"o-1\",\"customer_id\":\"c-1\",\"reason\":\"out of "
                      "stock\",\"sku\":\"sku-9\"}"},
    {"StockRejected",
     "{\"order_id\":\"o-2\",\"customer_id\":\"c-1\",\"reason\":\"no lines\",\"sku\":null}"},
    {"StockReleased", "{\"order_id\":\"o-1\",\"reason\":\"payment declined\",\"items\":[]}"},
    {"PaymentAuthorized", "{\"order_id\":\"o-1\",\"customer_id\":\"c-1\",\"amount_cents\":3500,"
                          "\"currency\":\"EUR\",\"authorization_id\":\"auth-1\"}"},
    {"PaymentDeclined",
     "{\"order_id\":\"o-1\",\"customer_id\":\"c-1\",\"amount_cents\":3500,\"currency\":\"EUR\","
     "\"reason\":\"credit limit\",\"items\":[{\"sku\":\"sku-1\",\"quantity\":2},{\"sku\":"
     "\"sku-2\",\"quantity\":2147483647}]}"},
    {"ShipmentScheduled", "{\"order_id\":\"o-1\",\"customer_id\":\"c-1\",\"carrier\":\"DHL\","
                          "\"tracking_number\":\"T-1\"}"},
    {"ShipmentDispatched", "{\"order_id\":\"o-1\",\"customer_id\":\"c-1\",\"carrier\":\"DHL\","
                           "\"tracking_number\":\"T-1\"}"},
    {"OrderConfirmed", "{\"order_id\":\"o-1\",\"customer_id\":\"c-1\",\"total_cents\":3500,"
                       "\"currency\":\"EUR\"}"},
    {"OrderCancelled", "{\"order_id\":\"o-1\",\"customer_id\":\"c-1\",\"status\":\"REJECTED\","
                       "\"reason\":\"out of stock\"}"},
    {"StockLineCommand",
     "{\"order_id\":\"o-1\",\"sku\":\"sku-1\",\"quantity\":2,\"action\":\"RESERVE\"}"},
    {"StockLineResult",
     "{\"order_id\":\"o-1\",\"sku\":\"sku-1\",\"reserved\":false,\"reason\":\"none left\"}"},
    {"SkuStock", "{\"sku\":\"sku-1\",\"available\":7,\"held_units\":2,\"wait_head\":3,"
                 "\"wait_next\":5,\"applied_offset\":17}"},
    {"SkuHold", "{\"sku\":\"sku-1\",\"order_id\":\"o-1\",\"quantity\":2,\"state\":"
                "\"WAITING\",\"command_id\":\"e-1\",\"seq\":4,\"at\":9,\"before_state\":"
                "\"QUEUED\",\"before_order_id\":\"o-1\",\"before_quantity\":2,"
                "\"before_command_id\":\"e-1\",\"before_seq\":4}"},
    {"OrderReservation",
     "{\"order_id\":\"o-1\",\"placed_id\":\"e-1\",\"customer_id\":\"c-1\",\"currency\":"
     "\"EUR\",\"total_cents\":3500,\"status\":\"SOLD\",\"reason\":\"\",\"lines\":[{\"sku\":"
     "\"sku-1\",\"quantity\":2,\"state\":\"RESERVED\",\"reason\":\"\"}],\"payment_id\":"
     "\"e-2\"}"},
    {"NotificationSent",
     "{\"notification_id\":\"n-1\",\"order_id\":\"o-1\",\"customer_id\":\"c-1\",\"template\":"
     "\"order_confirmed\",\"channel\":\"file\",\"message\":\"B\xc3\xa4r \\\"quoted\\\"\\n\\t"
     "\xe2\x82\xac \xf0\x9f\x98\x80 \\\\ \\u0001\"}"},
    {"StockLevel", "{\"sku\":\"sku-1\",\"available\":-9223372036854775808}"},
    {"OrderStatus",
     "{\"order_id\":\"o-1\",\"customer_id\":\"c-1\",\"status\":\"PAID\",\"total_cents\":3500,"
     "\"reason\":\"x\",\"history\":[{\"type\":\"shop.orders.OrderPlaced\",\"source\":"
     "\"evk-order\",\"time\":\"2026-11-24T14:03:05.123Z\",\"event_id\":\"e-1\"}]}"},
};
#define N_SAMPLES (sizeof samples / sizeof samples[0])

static evk_event_t *from_json(const char *type, const char *json) {
    evk_event_t *ev = NULL;
    char err[512] = "";
    evk_err_t rc = evk_event_from_json(schema(type), json, strlen(json), &ev, err, sizeof err);
    if (rc != EVK_OK) fail_msg("%s: %s", type, err);
    return ev;
}

static char *to_json(const evk_event_t *ev) {
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(evk_event_to_json(ev, &out, &len), EVK_OK);
    assert_int_equal(strlen(out), len);
    return out;
}

static void assert_json(const evk_event_t *ev, const char *expected) {
    char *got = to_json(ev);
    assert_string_equal(got, expected);
    free(got);
}

static void encode(const evk_event_t *ev, unsigned char **frame, size_t *len) {
    void *out = NULL;
    assert_int_equal(evk_event_encode(ev, &out, len), EVK_OK);
    *frame = out;
}

static evk_err_t decode(const void *frame, size_t len, char *err, size_t err_size) {
    evk_event_t *ev = NULL;
    evk_err_t rc = evk_event_decode(cat, frame, len, NULL, 0, NULL, &ev, err, err_size);
    assert_true((rc == EVK_OK) == (ev != NULL));
    evk_event_destroy(ev);
    return rc;
}

static void assert_decode_error(const void *frame, size_t len, evk_err_t code,
                                const char *msg) {
    char err[512] = "";
    evk_err_t rc = decode(frame, len, err, sizeof err);
    if (rc != code)
        fail_msg("got %s \"%s\", expected %s", evk_err_name(rc), err, evk_err_name(code));
    assert_string_equal(err, msg);
}

/* ---- the object ---- */

static int is_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static void assert_uuid4(const char *id) {
    assert_non_null(id);
    assert_int_equal(strlen(id), 36);
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            assert_int_equal(id[i], '-');
        else
            assert_true(is_hex(id[i]));
    }
    assert_int_equal(id[14], '4');
    assert_non_null(strchr("89ab", id[19]));
}

static void test_new_event(void **state) {
    (void)state;
    evk_event_t *ev = evk_event_new(schema("shop.orders.OrderPlaced"));
    assert_non_null(ev);
    assert_string_equal(evk_event_type(ev), "shop.orders.OrderPlaced");
    assert_ptr_equal(evk_event_schema(ev), schema("OrderPlaced"));
    assert_uuid4(evk_event_id(ev));
    const char *t = evk_event_time(ev);
    assert_non_null(t);
    assert_int_equal(strlen(t), 24); /* 2026-11-24T14:03:05.123Z */
    assert_true(t[4] == '-' && t[10] == 'T' && t[19] == '.' && t[23] == 'Z');
    assert_null(evk_event_source(ev));
    assert_null(evk_event_key(ev));
    assert_null(evk_event_correlation_id(ev));
    const char *topic = "x";
    int32_t partition = 0;
    int64_t offset = 0;
    evk_event_origin(ev, &topic, &partition, &offset);
    assert_null(topic);
    assert_int_equal(offset, -1);
    /* zero values, and the schema default for currency */
    assert_json(ev, "{\"order_id\":\"\",\"customer_id\":\"\",\"items\":[],\"currency\":\"EUR\","
                    "\"created_at\":0}");
    evk_event_t *other = evk_event_new(schema("OrderPlaced"));
    assert_string_not_equal(evk_event_id(ev), evk_event_id(other));
    evk_event_destroy(other);
    evk_event_destroy(ev);
}

static void test_defaults_and_unions(void **state) {
    (void)state;
    evk_event_t *ev = evk_event_new(schema("OrderStatus"));
    assert_json(ev, "{\"order_id\":\"\",\"customer_id\":\"\",\"status\":\"PLACED\","
                    "\"total_cents\":0,\"reason\":null,\"history\":[]}");
    unsigned char *frame;
    size_t len;
    encode(ev, &frame, &len); /* every union has a branch */
    free(frame);
    evk_event_destroy(ev);
}

static void test_caused_by(void **state) {
    (void)state;
    evk_event_t *cause = evk_event_new(schema("OrderPlaced"));
    assert_int_equal(evk_event_set_key(cause, "o-1"), EVK_OK);
    evk_event_t *ev = evk_event_new_caused_by(schema("StockReserved"), cause);
    assert_string_equal(evk_event_key(ev), "o-1");
    assert_string_equal(evk_event_correlation_id(ev), evk_event_id(cause));
    assert_string_equal(evk_event_causation_id(ev), evk_event_id(cause));
    assert_string_not_equal(evk_event_id(ev), evk_event_id(cause));
    evk_event_t *next = evk_event_new_caused_by(schema("PaymentAuthorized"), ev);
    assert_string_equal(evk_event_correlation_id(next), evk_event_id(cause));
    assert_string_equal(evk_event_causation_id(next), evk_event_id(ev));
    evk_event_destroy(next);
    evk_event_destroy(ev);
    evk_event_destroy(cause);
}

static void test_metadata_setters(void **state) {
    (void)state;
    evk_event_t *ev = evk_event_new(schema("StockLevel"));
    assert_int_equal(evk_event_set_source(ev, "inventory-service"), EVK_OK);
    assert_string_equal(evk_event_source(ev), "inventory-service");
    assert_int_equal(evk_event_set_source(ev, NULL), EVK_OK);
    assert_null(evk_event_source(ev));
    assert_int_equal(evk_event_set_origin(ev, "inventory.levels", 3, 42), EVK_OK);
    const char *topic;
    int32_t partition;
    int64_t offset;
    evk_event_origin(ev, &topic, &partition, &offset);
    assert_string_equal(topic, "inventory.levels");
    assert_int_equal(partition, 3);
    assert_int_equal(offset, 42);
    evk_event_destroy(ev);
    evk_event_destroy(NULL);
}

/* ---- field paths ---- */

static void test_paths_scalars_and_arrays(void **state) {
    (void)state;
    evk_event_t *ev = evk_event_new(schema("OrderPlaced"));
    const char *s;
    int64_t n;
    size_t size, idx;
    assert_int_equal(evk_event_set_string(ev, "order_id", "o-9"), EVK_OK);
    assert_int_equal(evk_event_get_string(ev, "order_id", &s), EVK_OK);
    assert_string_equal(s, "o-9");
    assert_int_equal(evk_event_append(ev, "items", &idx), EVK_OK);
    assert_int_equal(idx, 0);
    assert_int_equal(evk_event_append(ev, "items", &idx), EVK_OK);
    assert_int_equal(idx, 1);
    assert_int_equal(evk_event_array_size(ev, "items", &size), EVK_OK);
    assert_int_equal(size, 2);
    assert_int_equal(evk_event_set_string(ev, "items[1].sku", "sku-2"), EVK_OK);
    assert_int_equal(evk_event_set_long(ev, "items[1].quantity", 7), EVK_OK);
    assert_int_equal(evk_event_set_long(ev, "items[1].unit_price_cents", 1LL << 40), EVK_OK);
    assert_int_equal(evk_event_set_long(ev, "created_at", 1795615385123LL), EVK_OK);
    assert_int_equal(evk_event_get_string(ev, "items[1].sku", &s), EVK_OK);
    assert_string_equal(s, "sku-2");
    assert_int_equal(evk_event_get_long(ev, "items[1].quantity", &n), EVK_OK); /* int */
    assert_int_equal(n, 7);
    assert_int_equal(evk_event_get_long(ev, "items[1].unit_price_cents", &n), EVK_OK);
    assert_true(n == 1LL << 40);
    assert_int_equal(evk_event_get_string(ev, "currency", &s), EVK_OK);
    assert_string_equal(s, "EUR");
    assert_json(ev, "{\"order_id\":\"o-9\",\"customer_id\":\"\",\"items\":[{\"sku\":\"\","
                    "\"quantity\":0,\"unit_price_cents\":0},{\"sku\":\"sku-2\",\"quantity\":7,"
                    "\"unit_price_cents\":1099511627776}],\"currency\":\"EUR\","
                    "\"created_at\":1795615385123}");
    evk_event_destroy(ev);
}

static void test_paths_errors(void **state) {
    (void)state;
    evk_event_t *ev = evk_event_new(schema("OrderPlaced"));
    const char *s;
    int64_t n;
    double d;
    int b;
    size_t idx;
    assert_int_equal(evk_event_append(ev, "items", &idx), EVK_OK);
    /* range-checked int */
    assert_int_equal(evk_event_set_long(ev, "items[0].quantity", 3000000000LL),
                     EVK_ERR_VALIDATION);
    assert_int_equal(evk_event_set_long(ev, "items[0].quantity", -2147483648LL), EVK_OK);
    /* no such field / index / malformed paths */
    const char *missing[] = {"nope",       "items[1].sku", "items[0].nope", "",
                             "items[",     "items[x]",     "items[0",       "order_id.x",
                             "items..sku", "items[0].",    ".order_id",     "order_id[0]"};
    for (size_t i = 0; i < sizeof missing / sizeof *missing; i++) {
        if (evk_event_get_string(ev, missing[i], &s) != EVK_ERR_NOT_FOUND)
            fail_msg("path \"%s\" should not be found", missing[i]);
        assert_int_equal(evk_event_set_string(ev, missing[i], "v"), EVK_ERR_NOT_FOUND);
    }
    /* wrong type */
    assert_int_equal(evk_event_get_long(ev, "order_id", &n), EVK_ERR_VALIDATION);
    assert_int_equal(evk_event_get_string(ev, "created_at", &s), EVK_ERR_VALIDATION);
    assert_int_equal(evk_event_get_double(ev, "created_at", &d), EVK_ERR_VALIDATION);
    assert_int_equal(evk_event_get_bool(ev, "order_id", &b), EVK_ERR_VALIDATION);
    assert_int_equal(evk_event_set_long(ev, "order_id", 1), EVK_ERR_VALIDATION);
    assert_int_equal(evk_event_set_string(ev, "created_at", "x"), EVK_ERR_VALIDATION);
    assert_int_equal(evk_event_set_double(ev, "order_id", 1.5), EVK_ERR_VALIDATION);
    assert_int_equal(evk_event_set_bool(ev, "order_id", 1), EVK_ERR_VALIDATION);
    assert_int_equal(evk_event_append(ev, "order_id", &idx), EVK_ERR_VALIDATION);
    /* text that is not UTF-8 never reaches the wire */
    assert_int_equal(evk_event_set_string(ev, "order_id", "bad \xff"), EVK_ERR_VALIDATION);
    assert_int_equal(evk_event_get_string(NULL, "order_id", &s), EVK_ERR_INVALID_ARG);
    evk_event_destroy(ev);
}

static void test_paths_union_enum(void **state) {
    (void)state;
    evk_event_t *ev = evk_event_new(schema("OrderStatus"));
    const char *s;
    size_t idx;
    assert_int_equal(evk_event_get_string(ev, "reason", &s), EVK_ERR_NOT_FOUND); /* null */
    assert_int_equal(evk_event_set_string(ev, "reason", "declined"), EVK_OK);
    assert_int_equal(evk_event_get_string(ev, "reason", &s), EVK_OK);
    assert_string_equal(s, "declined");
    assert_int_equal(evk_event_set_long(ev, "reason", 5),
                     EVK_ERR_VALIDATION); /* no long branch */
    assert_int_equal(evk_event_get_string(ev, "status", &s), EVK_OK);
    assert_string_equal(s, "PLACED");
    assert_int_equal(evk_event_set_string(ev, "status", "SHIPPED"), EVK_OK);
    assert_int_equal(evk_event_get_string(ev, "status", &s), EVK_OK);
    assert_string_equal(s, "SHIPPED");
    assert_int_equal(evk_event_set_string(ev, "status", "LOST"), EVK_ERR_VALIDATION);
    assert_int_equal(evk_event_append(ev, "history", &idx), EVK_OK);
    assert_int_equal(evk_event_set_string(ev, "history[0].event_id", "e-1"), EVK_OK);
    assert_json(ev, "{\"order_id\":\"\",\"customer_id\":\"\",\"status\":\"SHIPPED\","
                    "\"total_cents\":0,\"reason\":\"declined\",\"history\":[{\"type\":\"\","
                    "\"source\":\"\",\"time\":\"\",\"event_id\":\"e-1\"}]}");
    evk_event_destroy(ev);
}

/* ---- round trips ---- */

static void assert_same_metadata(const evk_event_t *a, const evk_event_t *b) {
    assert_string_equal(evk_event_id(a), evk_event_id(b));
    assert_string_equal(evk_event_time(a), evk_event_time(b));
    assert_string_equal(evk_event_source(a), evk_event_source(b));
    assert_string_equal(evk_event_key(a), evk_event_key(b));
    assert_string_equal(evk_event_correlation_id(a), evk_event_correlation_id(b));
    assert_string_equal(evk_event_causation_id(a), evk_event_causation_id(b));
}

static void assert_header(rd_kafka_headers_t *h, const char *name, const char *value) {
    const void *v;
    size_t size;
    assert_int_equal(rd_kafka_header_get_last(h, name, &v, &size), RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(size, strlen(value));
    assert_memory_equal(v, value, size);
}

static void round_trip(const char *type, const char *json) {
    evk_event_t *ev = from_json(type, json), *back = NULL;
    evk_event_set_source(ev, "test");
    evk_event_set_correlation_id(ev, "corr-1");
    evk_event_set_causation_id(ev, "cause-1");
    /* A type without a key field (SkuHold) gets its key from its writer. */
    if (!evk_event_key(ev)) evk_event_set_key(ev, "sku-1\x1fo-1");
    unsigned char *frame;
    size_t len;
    rd_kafka_headers_t *h;
    encode(ev, &frame, &len);
    assert_int_equal(frame[0], 0);
    assert_int_equal((frame[1] << 24) | (frame[2] << 16) | (frame[3] << 8) | frame[4],
                     evk_schema_id(evk_event_schema(ev)));
    assert_int_equal(evk_event_headers(ev, &h), EVK_OK);
    assert_header(h, "ce_specversion", "1.0");
    assert_header(h, "ce_type", evk_event_type(ev));
    assert_header(h, "content-type", "application/avro");
    const char *key = evk_event_key(ev);
    char err[512] = "";
    evk_err_t rc =
        evk_event_decode(cat, frame, len, key, strlen(key), h, &back, err, sizeof err);
    if (rc != EVK_OK) fail_msg("%s: %s", type, err);
    assert_ptr_equal(evk_event_schema(back), evk_event_schema(ev));
    assert_same_metadata(ev, back);
    assert_json(back, json);
    rd_kafka_headers_destroy(h);
    free(frame);
    evk_event_destroy(back);
    evk_event_destroy(ev);
}

static void test_round_trip_every_type(void **state) {
    (void)state;
    for (size_t i = 0; i < evk_catalog_count(cat); i++) {
        const char *name = evk_schema_name(evk_catalog_at(cat, i));
        int covered = 0;
        for (size_t j = 0; j < N_SAMPLES; j++)
            covered |= !strcmp(samples[j].type, name);
        if (!covered) fail_msg("no sample for %s", name);
    }
    for (size_t j = 0; j < N_SAMPLES; j++)
        round_trip(samples[j].type, samples[j].json);
}

static void test_decode_without_headers(void **state) {
    (void)state;
    evk_event_t *ev = from_json("StockLevel", samples[N_SAMPLES - 2].json), *back = NULL;
    unsigned char *frame;
    size_t len;
    encode(ev, &frame, &len);
    assert_int_equal(evk_event_decode(cat, frame, len, NULL, 0, NULL, &back, NULL, 0), EVK_OK);
    assert_null(evk_event_id(back));
    assert_null(evk_event_time(back));
    assert_null(evk_event_key(back));
    const char *topic;
    int64_t offset;
    evk_event_origin(back, &topic, NULL, &offset);
    assert_null(topic);
    assert_int_equal(offset, -1);
    evk_event_destroy(back);
    /* only the headers that are there */
    rd_kafka_headers_t *h = rd_kafka_headers_new(2);
    rd_kafka_header_add(h, "ce_source", -1, "kcat", -1);
    assert_int_equal(evk_event_decode(cat, frame, len, "k", 1, h, &back, NULL, 0), EVK_OK);
    assert_null(evk_event_id(back));
    assert_string_equal(evk_event_source(back), "kcat");
    assert_string_equal(evk_event_key(back), "k");
    rd_kafka_headers_destroy(h);
    evk_event_destroy(back);
    free(frame);
    evk_event_destroy(ev);
}

/* ---- malformed frames ---- */

static size_t frame_of(int id, const char *body, size_t body_len, unsigned char *out) {
    out[0] = 0;
    out[1] = (unsigned char)(id >> 24);
    out[2] = (unsigned char)(id >> 16);
    out[3] = (unsigned char)(id >> 8);
    out[4] = (unsigned char)id;
    memcpy(out + 5, body, body_len);
    return 5 + body_len;
}

static void test_frame_header_errors(void **state) {
    (void)state;
    unsigned char f[64];
    assert_decode_error("\0\0\0", 3, EVK_ERR_TRUNCATED,
                        "frame is 3 bytes, shorter than the 5-byte header");
    assert_decode_error("", 0, EVK_ERR_TRUNCATED,
                        "frame is 0 bytes, shorter than the 5-byte header");
    assert_decode_error("{\"order_id\":\"o-1\"}", 18, EVK_ERR_BAD_MAGIC,
                        "magic byte is 0x7b, expected 0x00");
    size_t n = frame_of(99, "", 0, f);
    assert_decode_error(f, n, EVK_ERR_UNKNOWN_SCHEMA_ID, "schema id 99 is not in the catalog");
    n = frame_of(-1, "", 0, f);
    assert_decode_error(f, n, EVK_ERR_UNKNOWN_SCHEMA_ID, "schema id -1 is not in the catalog");
}

/* StockLevel {"sku":"sku-1","available":-5}: 0a "sku-1" 09 */
#define STOCK_BODY                                                                             \
    "\x0a"                                                                                     \
    "sku-1"                                                                                    \
    "\x09"

static void test_body_errors(void **state) {
    (void)state;
    unsigned char f[64];
    char err[256];
    size_t n = frame_of(12, STOCK_BODY, 7, f);
    assert_int_equal(decode(f, n, err, sizeof err), EVK_OK);
    assert_decode_error(f, n - 1, EVK_ERR_TRUNCATED,
                        "StockLevel body: available: long at offset 6 runs past the end of the "
                        "6-byte body");
    assert_decode_error(f, 5 + 3, EVK_ERR_TRUNCATED,
                        "StockLevel body: sku: string of 5 bytes at offset 1 runs past the end "
                        "of the 3-byte body");
    assert_decode_error(f, 5, EVK_ERR_TRUNCATED,
                        "StockLevel body: sku: string length at offset 0 runs past the end of "
                        "the 0-byte body");
    n = frame_of(12, STOCK_BODY "abc", 10, f);
    assert_decode_error(f, n, EVK_ERR_DECODE, "StockLevel body: 3 trailing bytes");
    n = frame_of(12, "\x00\x00\x00", 3, f);
    assert_decode_error(f, n, EVK_ERR_DECODE, "StockLevel body: 1 trailing byte");

    /* OrderPlaced, a real one plus 3 bytes */
    evk_event_t *ev = from_json("OrderPlaced", samples[0].json);
    unsigned char *frame, big[256];
    size_t len;
    encode(ev, &frame, &len);
    memcpy(big, frame, len);
    memcpy(big + len, "\x02\x04\x06", 3);
    assert_decode_error(big, len + 3, EVK_ERR_DECODE, "OrderPlaced body: 3 trailing bytes");
    /* every proper prefix is truncated, none crashes */
    for (size_t cut = 0; cut < len; cut++)
        assert_int_equal(decode(frame, cut, err, sizeof err), EVK_ERR_TRUNCATED);
    free(frame);
    evk_event_destroy(ev);
}

static void test_garbage_lengths(void **state) {
    (void)state;
    unsigned char f[64];
    size_t n;
    /* string length 2^31-1 */
    n = frame_of(12, "\xfe\xff\xff\xff\x0f", 5, f);
    assert_decode_error(
        f, n, EVK_ERR_TRUNCATED,
        "StockLevel body: sku: string of 2147483647 bytes at offset 5 runs past "
        "the end of the 5-byte body");
    /* string length 2^62, in the longest varint there is */
    n = frame_of(12, "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", 10, f);
    assert_decode_error(
        f, n, EVK_ERR_TRUNCATED,
        "StockLevel body: sku: string of 4611686018427387904 bytes at offset 10 "
        "runs past the end of the 10-byte body");
    /* negative length */
    n = frame_of(12, "\x03", 1, f);
    assert_decode_error(f, n, EVK_ERR_DECODE,
                        "StockLevel body: sku: negative string length -2 at offset 0");
    /* 11-byte varint */
    n = frame_of(12, "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", 11, f);
    assert_decode_error(f, n, EVK_ERR_DECODE,
                        "StockLevel body: sku: malformed string length at offset 0");
    /* OrderPlaced with "", "", then an array count of 2^31-1 */
    n = frame_of(1, "\x00\x00\xfe\xff\xff\xff\x0f", 7, f);
    assert_decode_error(
        f, n, EVK_ERR_TRUNCATED,
        "OrderPlaced body: items: array block of 2147483647 entries at offset 2 "
        "runs past the end of the 7-byte body");
    /* negative block count, then a block size that does not match */
    n = frame_of(1, "\x00\x00\x01\x04\x00\x00\x00\x00", 8, f);
    assert_decode_error(
        f, n, EVK_ERR_DECODE,
        "OrderPlaced body: items: array block at offset 2 says 2 bytes, holds 3");
    /* int beyond 32 bits: items[0].quantity */
    n = frame_of(1, "\x00\x00\x02\x00\x80\x80\x80\x80\x10\x00\x00\x00\x00", 13, f);
    assert_decode_error(
        f, n, EVK_ERR_DECODE,
        "OrderPlaced body: items[0].quantity: int 2147483648 at offset 4 out of "
        "range");
}

static void test_bad_symbols_and_branches(void **state) {
    (void)state;
    unsigned char f[64];
    size_t n;
    /* OrderStatus: "", "", status 9 */
    n = frame_of(13, "\x00\x00\x12", 3, f);
    assert_decode_error(f, n, EVK_ERR_DECODE,
                        "OrderStatus body: status: enum symbol 9 at offset 2 out of range (6)");
    /* ... status 0, total 0, reason branch 2 */
    n = frame_of(13, "\x00\x00\x00\x00\x04", 5, f);
    assert_decode_error(
        f, n, EVK_ERR_DECODE,
        "OrderStatus body: reason: union branch 2 at offset 4 out of range (2)");
    n = frame_of(13, "\x00\x00\x00\x00\x01", 5, f);
    assert_decode_error(
        f, n, EVK_ERR_DECODE,
        "OrderStatus body: reason: union branch -1 at offset 4 out of range (2)");
    /* invalid UTF-8 (a lone continuation byte) in sku */
    n = frame_of(12, "\x04\x80x\x00", 4, f);
    assert_decode_error(f, n, EVK_ERR_DECODE,
                        "StockLevel body: sku: string at offset 1 is not valid UTF-8");
}

/* Random damage to valid frames must fail cleanly or decode to something
 * that encodes again; run under ASan/UBSan this is a small fuzzer. */
static uint64_t rng = 0x2545f4914f6cdd1dULL;

static uint32_t next_rand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)rng;
}

static void mutate_and_decode(const unsigned char *frame, size_t len) {
    unsigned char buf[512];
    size_t n = len;
    memcpy(buf, frame, len);
    int edits = 1 + (int)(next_rand() % 4);
    for (int e = 0; e < edits; e++) {
        size_t at = 5 + next_rand() % (n - 5 + 1);
        switch (next_rand() % 3) {
        case 0:
            if (at < n) buf[at] = (unsigned char)next_rand();
            break;
        case 1:
            n = at;
            break;
        default:
            if (n < sizeof buf) {
                memmove(buf + at + 1, buf + at, n - at);
                buf[at] = (unsigned char)next_rand();
                n++;
            }
        }
    }
    evk_event_t *ev = NULL;
    if (evk_event_decode(cat, buf, n, NULL, 0, NULL, &ev, NULL, 0) != EVK_OK) return;
    unsigned char *again;
    size_t again_len;
    encode(ev, &again, &again_len);
    char *json = to_json(ev);
    free(json);
    free(again);
    evk_event_destroy(ev);
}

static void test_random_damage(void **state) {
    (void)state;
    for (size_t j = 0; j < N_SAMPLES; j++) {
        evk_event_t *ev = from_json(samples[j].type, samples[j].json);
        unsigned char *frame;
        size_t len;
        encode(ev, &frame, &len);
        for (int i = 0; i < 5000; i++)
            mutate_and_decode(frame, len);
        free(frame);
        evk_event_destroy(ev);
    }
    /* random bodies behind every schema id */
    unsigned char buf[64];
    for (int i = 0; i < 50000; i++) {
        size_t n = 5 + next_rand() % 40;
        frame_of(1 + (int)(next_rand() % 13), "", 0, buf);
        for (size_t k = 5; k < n; k++)
            buf[k] = (unsigned char)next_rand();
        evk_event_t *ev = NULL;
        if (evk_event_decode(cat, buf, n, NULL, 0, NULL, &ev, NULL, 0) == EVK_OK) {
            char *json = to_json(ev);
            free(json);
            evk_event_destroy(ev);
        }
    }
}

/* ---- interop with python3-avro ---- */

static json_t *load_python_frames(void) {
    char path[1024];
    json_error_t je;
    snprintf(path, sizeof path, "%s/codec/python_frames.jsonl", getenv("EVK_TEST_DATA"));
    json_t *all = json_array();
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    char line[8192];
    while (fgets(line, sizeof line, fp)) {
        json_t *j = json_loads(line, 0, &je);
        if (!j) fail_msg("%s:%d: %s", path, je.line, je.text);
        json_array_append_new(all, j);
    }
    fclose(fp);
    assert_true(json_array_size(all) > 0);
    return all;
}

static size_t unhex(const char *hex, unsigned char *out, size_t cap) {
    size_t n = strlen(hex) / 2;
    assert_true(n <= cap);
    for (size_t i = 0; i < n; i++) {
        unsigned int byte;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &byte), 1);
        out[i] = (unsigned char)byte;
    }
    return n;
}

static void assert_json_equal(const char *got, const json_t *want) {
    json_error_t je;
    json_t *g = json_loads(got, 0, &je);
    assert_non_null(g);
    if (!json_equal(g, (json_t *)want)) {
        char *w = json_dumps(want, JSON_COMPACT);
        fail_msg("got %s\nwant %s", got, w);
    }
    json_decref(g);
}

static void test_python_frames_decode(void **state) {
    (void)state;
    json_t *all = load_python_frames();
    size_t i;
    json_t *item;
    json_array_foreach(all, i, item) {
        unsigned char frame[4096];
        size_t n =
            unhex(json_string_value(json_object_get(item, "frame")), frame, sizeof frame);
        evk_event_t *ev = NULL;
        char err[512] = "";
        if (evk_event_decode(cat, frame, n, NULL, 0, NULL, &ev, err, sizeof err) != EVK_OK)
            fail_msg("python frame %zu: %s", i, err);
        assert_string_equal(evk_schema_name(evk_event_schema(ev)),
                            json_string_value(json_object_get(item, "type")));
        char *got = to_json(ev);
        assert_json_equal(got, json_object_get(item, "value"));
        /* and evkit writes the very same bytes */
        unsigned char *again;
        size_t len;
        encode(ev, &again, &len);
        assert_int_equal(len, n);
        assert_memory_equal(again, frame, n);
        free(again);
        free(got);
        evk_event_destroy(ev);
    }
    json_decref(all);
}

static int python_avro_available(void) {
    return access("/usr/bin/python3", X_OK) == 0 &&
           system("/usr/bin/python3 -c 'import avro.io' 2>/dev/null") == 0;
}

/* The reverse direction, live: python3-avro decodes what evkit encodes. */
static void test_python_decodes_evkit_frames(void **state) {
    (void)state;
    if (!python_avro_available()) skip();
    char in_path[] = "/tmp/evk-frames-XXXXXX", cmd[2048];
    int fd = mkstemp(in_path);
    assert_true(fd >= 0);
    FILE *in = fdopen(fd, "w");
    for (size_t j = 0; j < N_SAMPLES; j++) {
        evk_event_t *ev = from_json(samples[j].type, samples[j].json);
        unsigned char *frame;
        size_t len;
        encode(ev, &frame, &len);
        for (size_t k = 0; k < len; k++)
            fprintf(in, "%02x", frame[k]);
        fputc('\n', in);
        free(frame);
        evk_event_destroy(ev);
    }
    fclose(in);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/codec/interop.py decode < %s",
             getenv("EVK_TEST_DATA"), in_path);
    FILE *out = popen(cmd, "r");
    assert_non_null(out);
    char line[8192];
    size_t j = 0;
    for (; fgets(line, sizeof line, out); j++) {
        assert_true(j < N_SAMPLES);
        json_error_t je;
        json_t *want = json_loads(samples[j].json, 0, &je);
        line[strcspn(line, "\n")] = 0;
        assert_json_equal(line, want);
        json_decref(want);
    }
    assert_int_equal(pclose(out), 0);
    assert_int_equal(j, N_SAMPLES);
    unlink(in_path);
}

/* ---- through librdkafka ---- */

static rd_kafka_t *client(rd_kafka_type_t type, const char *bootstraps) {
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* the mock cluster's owner connects nowhere: keep its notice out of the log */
    const char *key = bootstraps ? "bootstrap.servers" : "log_level";
    assert_int_equal(
        rd_kafka_conf_set(conf, key, bootstraps ? bootstraps : "4", err, sizeof err),
        RD_KAFKA_CONF_OK);
    if (type == RD_KAFKA_CONSUMER)
        assert_int_equal(rd_kafka_conf_set(conf, "group.id", "test-event", err, sizeof err),
                         RD_KAFKA_CONF_OK);
    rd_kafka_t *rk = rd_kafka_new(type, conf, err, sizeof err);
    if (!rk) fail_msg("rd_kafka_new: %s", err);
    return rk;
}

static void produce(rd_kafka_t *p, const evk_event_t *ev) {
    unsigned char *frame;
    size_t len;
    rd_kafka_headers_t *h;
    encode(ev, &frame, &len);
    assert_int_equal(evk_event_headers(ev, &h), EVK_OK);
    const char *key = evk_event_key(ev);
    assert_int_equal(rd_kafka_producev(p, RD_KAFKA_V_TOPIC("orders"), RD_KAFKA_V_PARTITION(0),
                                       RD_KAFKA_V_KEY(key, strlen(key)),
                                       RD_KAFKA_V_VALUE(frame, len), RD_KAFKA_V_HEADERS(h),
                                       RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
                                       RD_KAFKA_V_END),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(rd_kafka_flush(p, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
}

static rd_kafka_message_t *consume_one(rd_kafka_t *c) {
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(parts, "orders", 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    assert_int_equal(rd_kafka_assign(c, parts), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(parts);
    for (int i = 0; i < 100; i++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
        if (m && !m->err) return m;
        if (m) rd_kafka_message_destroy(m);
    }
    fail_msg("no message consumed");
    return NULL;
}

static void test_from_message(void **state) {
    (void)state;
    char err[512];
    rd_kafka_t *owner = client(RD_KAFKA_PRODUCER, NULL);
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(owner, 1);
    assert_non_null(mc);
    assert_int_equal(rd_kafka_mock_topic_create(mc, "orders", 1, 1),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    const char *bootstraps = rd_kafka_mock_cluster_bootstraps(mc);
    rd_kafka_t *p = client(RD_KAFKA_PRODUCER, bootstraps);
    rd_kafka_t *c = client(RD_KAFKA_CONSUMER, bootstraps);

    evk_event_t *ev = from_json("OrderPlaced", samples[0].json), *back = NULL;
    evk_event_set_source(ev, "evk-order");
    evk_event_set_correlation_id(ev, "o-1");
    evk_event_set_causation_id(ev, "cmd-1");
    produce(p, ev);
    rd_kafka_message_t *m = consume_one(c);
    if (evk_event_from_message(cat, m, &back, err, sizeof err) != EVK_OK) fail_msg("%s", err);
    const char *topic;
    int32_t partition;
    int64_t offset;
    evk_event_origin(back, &topic, &partition, &offset);
    assert_string_equal(topic, "orders");
    assert_int_equal(partition, 0);
    assert_int_equal(offset, m->offset);
    assert_same_metadata(ev, back);
    assert_json(back, samples[0].json);

    rd_kafka_message_destroy(m);
    evk_event_destroy(back);
    evk_event_destroy(ev);
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    rd_kafka_destroy(p);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(owner);
}

static void test_uuid_and_time(void **state) {
    (void)state;
    char a[37], b[37], t[32];
    evk_uuid4(a);
    evk_uuid4(b);
    assert_uuid4(a);
    assert_string_not_equal(a, b);
    evk_now_rfc3339(t);
    assert_int_equal(strlen(t), 24);
    assert_true(strncmp(t, "20", 2) == 0 && t[23] == 'Z');
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_event),
        cmocka_unit_test(test_defaults_and_unions),
        cmocka_unit_test(test_caused_by),
        cmocka_unit_test(test_metadata_setters),
        cmocka_unit_test(test_paths_scalars_and_arrays),
        cmocka_unit_test(test_paths_errors),
        cmocka_unit_test(test_paths_union_enum),
        cmocka_unit_test(test_round_trip_every_type),
        cmocka_unit_test(test_decode_without_headers),
        cmocka_unit_test(test_frame_header_errors),
        cmocka_unit_test(test_body_errors),
        cmocka_unit_test(test_garbage_lengths),
        cmocka_unit_test(test_bad_symbols_and_branches),
        cmocka_unit_test(test_random_damage),
        cmocka_unit_test(test_python_frames_decode),
        cmocka_unit_test(test_python_decodes_evkit_frames),
        cmocka_unit_test(test_from_message),
        cmocka_unit_test(test_uuid_and_time),
    };
    return cmocka_run_group_tests(tests, codec_load_catalog, codec_free_catalog);
}
