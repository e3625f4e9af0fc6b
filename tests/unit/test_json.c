/* JSON -> Avro validation (every error class with its exact message),
 * defaults, unions, keys; Avro -> JSON formatting. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "codec_support.h"

static evk_event_t *parse(const char *type, const char *json) {
    evk_event_t *ev = NULL;
    char err[512] = "";
    if (evk_event_from_json(schema(type), json, strlen(json), &ev, err, sizeof err) != EVK_OK)
        fail_msg("%s: %s", type, err);
    return ev;
}

static void assert_rejected(const char *type, const char *json, evk_err_t code,
                            const char *msg) {
    evk_event_t *ev = (evk_event_t *)1;
    char err[512] = "";
    evk_err_t rc = evk_event_from_json(schema(type), json, strlen(json), &ev, err, sizeof err);
    if (rc != code)
        fail_msg("got %s \"%s\", expected %s", evk_err_name(rc), err, evk_err_name(code));
    assert_null(ev);
    assert_string_equal(err, msg);
}

static void assert_json(const evk_event_t *ev, const char *expected) {
    char *got = NULL;
    size_t len;
    assert_int_equal(evk_event_to_json(ev, &got, &len), EVK_OK);
    assert_string_equal(got, expected);
    assert_int_equal(len, strlen(expected));
    free(got);
}

#define ORDER_HEAD "{\"order_id\":\"o-1\",\"customer_id\":\"c-1\","
#define ORDER_TAIL ",\"currency\":\"EUR\",\"created_at\":1}"
#define LINE(q) "{\"sku\":\"s\",\"quantity\":" q ",\"unit_price_cents\":5}"

static void test_valid_and_key(void **state) {
    (void)state;
    const char *json = ORDER_HEAD "\"items\":[" LINE("2") "]" ORDER_TAIL;
    evk_event_t *ev = parse("OrderPlaced", json);
    assert_json(ev, json);
    assert_string_equal(evk_event_key(ev), "o-1");
    assert_non_null(evk_event_id(ev));
    assert_non_null(evk_event_time(ev));
    evk_event_destroy(ev);
    ev = parse("StockLevel", "{\"available\":3,\"sku\":\"sku-7\"}"); /* any field order */
    assert_string_equal(evk_event_key(ev), "sku-7");
    assert_json(ev, "{\"sku\":\"sku-7\",\"available\":3}");
    evk_event_destroy(ev);
    /* whitespace and layout do not matter */
    ev = parse("StockLevel", " {\n  \"sku\" : \"a\",\n  \"available\" : 9007199254740993\n}\n");
    assert_json(ev, "{\"sku\":\"a\",\"available\":9007199254740993}");
    evk_event_destroy(ev);
}

static void test_wrong_types(void **state) {
    (void)state;
    assert_rejected("OrderPlaced", ORDER_HEAD "\"items\":[" LINE("\"2\"") "]" ORDER_TAIL,
                    EVK_ERR_VALIDATION, "items[0].quantity: expected int, got string");
    assert_rejected("OrderPlaced",
                    ORDER_HEAD "\"items\":[" LINE("2") "," LINE("1.5") "]" ORDER_TAIL,
                    EVK_ERR_VALIDATION, "items[1].quantity: expected int, got number");
    assert_rejected("OrderPlaced", ORDER_HEAD "\"items\":[" LINE("true") "]" ORDER_TAIL,
                    EVK_ERR_VALIDATION, "items[0].quantity: expected int, got boolean");
    assert_rejected("OrderPlaced", ORDER_HEAD "\"items\":[" LINE("null") "]" ORDER_TAIL,
                    EVK_ERR_VALIDATION, "items[0].quantity: expected int, got null");
    assert_rejected("OrderPlaced", ORDER_HEAD "\"items\":{}" ORDER_TAIL, EVK_ERR_VALIDATION,
                    "items: expected array, got object");
    assert_rejected("OrderPlaced", ORDER_HEAD "\"items\":[[]]" ORDER_TAIL, EVK_ERR_VALIDATION,
                    "items[0]: expected object, got array");
    assert_rejected("StockLevel", "{\"sku\":7,\"available\":1}", EVK_ERR_VALIDATION,
                    "sku: expected string, got integer");
    assert_rejected("StockLevel", "{\"sku\":\"a\",\"available\":1.0}", EVK_ERR_VALIDATION,
                    "available: expected long, got number");
    assert_rejected("OrderStatus",
                    "{\"order_id\":\"o\",\"customer_id\":\"c\",\"status\":1,\"reason\":null}",
                    EVK_ERR_VALIDATION, "status: expected string, got integer");
    assert_rejected(
        "OrderStatus",
        "{\"order_id\":\"o\",\"customer_id\":\"c\",\"status\":\"PAID\",\"reason\":5}",
        EVK_ERR_VALIDATION, "reason: expected null or string, got integer");
}

static void test_top_level(void **state) {
    (void)state;
    assert_rejected("OrderPlaced", "[1,2]", EVK_ERR_VALIDATION, "expected object, got array");
    assert_rejected("OrderPlaced", "\"o-1\"", EVK_ERR_VALIDATION,
                    "expected object, got string");
    assert_rejected("OrderPlaced", "null", EVK_ERR_VALIDATION, "expected object, got null");
}

static void test_missing_and_unknown(void **state) {
    (void)state;
    assert_rejected("OrderPlaced", "{\"order_id\":\"o-1\",\"items\":[],\"created_at\":1}",
                    EVK_ERR_VALIDATION, "customer_id: missing required field");
    assert_rejected("OrderPlaced",
                    ORDER_HEAD "\"items\":[{\"sku\":\"s\",\"quantity\":1}]" ORDER_TAIL,
                    EVK_ERR_VALIDATION, "items[0].unit_price_cents: missing required field");
    assert_rejected("OrderPlaced", ORDER_HEAD "\"items\":[],\"coupon\":\"X\"" ORDER_TAIL,
                    EVK_ERR_VALIDATION, "coupon: unknown field");
    assert_rejected("OrderPlaced",
                    ORDER_HEAD
                    "\"items\":[{\"sku\":\"s\",\"quantity\":1,\"unit_price_cents\":1,"
                    "\"colour\":\"red\"}]" ORDER_TAIL,
                    EVK_ERR_VALIDATION, "items[0].colour: unknown field");
}

static void test_ranges(void **state) {
    (void)state;
    assert_rejected("OrderPlaced",
                    ORDER_HEAD "\"items\":[" LINE("1") "," LINE("3000000000") "]" ORDER_TAIL,
                    EVK_ERR_VALIDATION, "items[1].quantity: 3000000000 out of range for int");
    assert_rejected("OrderPlaced", ORDER_HEAD "\"items\":[" LINE("-2147483649") "]" ORDER_TAIL,
                    EVK_ERR_VALIDATION, "items[0].quantity: -2147483649 out of range for int");
    evk_event_t *ev = parse("OrderPlaced", ORDER_HEAD "\"items\":[" LINE("2147483647") "," LINE(
                                               "-2147483648") "]" ORDER_TAIL);
    int64_t q;
    assert_int_equal(evk_event_get_long(ev, "items[1].quantity", &q), EVK_OK);
    assert_true(q == -2147483648LL);
    evk_event_destroy(ev);
    /* beyond 64 bits is jansson's to report */
    evk_event_t *out;
    char err[256];
    const char *big = "{\"sku\":\"a\",\"available\":99999999999999999999}";
    assert_int_equal(
        evk_event_from_json(schema("StockLevel"), big, strlen(big), &out, err, sizeof err),
        EVK_ERR_JSON);
    assert_string_equal(err, "line 1, column 43: too big integer near '99999999999999999999'");
}

static void test_enum_symbols(void **state) {
    (void)state;
    assert_rejected(
        "OrderStatus",
        "{\"order_id\":\"o\",\"customer_id\":\"c\",\"status\":\"FOO\",\"reason\":null}",
        EVK_ERR_VALIDATION,
        "status: \"FOO\" is not one of PLACED, RESERVED, PAID, SHIPPED, REJECTED, "
        "CANCELLED");
    assert_rejected(
        "OrderCancelled",
        "{\"order_id\":\"o\",\"customer_id\":\"c\",\"status\":\"paid\",\"reason\":\"r\"}",
        EVK_ERR_VALIDATION, "status: \"paid\" is not one of REJECTED, CANCELLED");
}

static void test_invalid_json(void **state) {
    (void)state;
    assert_rejected("OrderPlaced", "{\"order_id\": \"o-1\"", EVK_ERR_JSON,
                    "line 1, column 18: '}' expected near end of file");
    assert_rejected("OrderPlaced", "{\"a\":1,}", EVK_ERR_JSON,
                    "line 1, column 8: string or '}' expected near '}'");
    assert_rejected("OrderPlaced", "", EVK_ERR_JSON,
                    "line 1, column 0: unexpected token near end of file");
    assert_rejected("OrderPlaced", "{\"order_id\":\"a\",\"order_id\":\"b\"}", EVK_ERR_JSON,
                    "line 1, column 26: duplicate object key near '\"order_id\"'");
    /* only len bytes are read */
    evk_event_t *ev;
    const char *json = "{\"sku\":\"a\",\"available\":1}garbage";
    size_t len = (size_t)(strstr(json, "garbage") - json);
    assert_int_equal(evk_event_from_json(schema("StockLevel"), json, len, &ev, NULL, 0),
                     EVK_OK);
    evk_event_destroy(ev);
}

static void test_defaults(void **state) {
    (void)state;
    evk_event_t *ev = parse("OrderPlaced", "{\"order_id\":\"o\",\"customer_id\":\"c\","
                                           "\"items\":[],\"created_at\":5}");
    assert_json(ev,
                "{\"order_id\":\"o\",\"customer_id\":\"c\",\"items\":[],\"currency\":\"EUR\","
                "\"created_at\":5}");
    evk_event_destroy(ev);
    ev = parse("OrderStatus", "{\"order_id\":\"o\",\"customer_id\":\"c\",\"status\":\"PAID\"}");
    assert_json(ev, "{\"order_id\":\"o\",\"customer_id\":\"c\",\"status\":\"PAID\","
                    "\"total_cents\":0,\"reason\":null,\"history\":[]}");
    const char *s;
    assert_int_equal(evk_event_get_string(ev, "reason", &s), EVK_ERR_NOT_FOUND);
    evk_event_destroy(ev);
    ev = parse("StockRejected", "{\"order_id\":\"o\",\"customer_id\":\"c\",\"reason\":\"r\"}");
    assert_json(ev, "{\"order_id\":\"o\",\"customer_id\":\"c\",\"reason\":\"r\",\"sku\":null}");
    evk_event_destroy(ev);
}

static void test_unions(void **state) {
    (void)state;
    const char *s;
    evk_event_t *ev = parse("StockRejected", "{\"order_id\":\"o\",\"customer_id\":\"c\","
                                             "\"reason\":\"r\",\"sku\":\"sku-1\"}");
    assert_int_equal(evk_event_get_string(ev, "sku", &s), EVK_OK);
    assert_string_equal(s, "sku-1");
    assert_json(
        ev, "{\"order_id\":\"o\",\"customer_id\":\"c\",\"reason\":\"r\",\"sku\":\"sku-1\"}");
    evk_event_destroy(ev);
    ev = parse("StockRejected",
               "{\"order_id\":\"o\",\"customer_id\":\"c\",\"reason\":\"r\",\"sku\":null}");
    assert_int_equal(evk_event_get_string(ev, "sku", &s), EVK_ERR_NOT_FOUND);
    evk_event_destroy(ev);
}

#define REJECTED(reason) "{\"order_id\":\"o\",\"customer_id\":\"c\",\"reason\":" reason "}"

static void test_strings(void **state) {
    (void)state;
    /* escapes in, canonical escapes and raw UTF-8 out */
    evk_event_t *ev =
        parse("StockRejected", REJECTED("\"\\u00e9\\/\\b\\f\\r\\ud83d\\ude00\\u001f\""));
    assert_json(ev, "{\"order_id\":\"o\",\"customer_id\":\"c\",\"reason\":"
                    "\"\xc3\xa9/\\u0008\\u000c\\r\xf0\x9f\x98\x80\\u001f\",\"sku\":null}");
    evk_event_destroy(ev);
    /* U+0000 is a valid Avro string character and survives */
    ev = parse("StockRejected", REJECTED("\"a\\u0000b\""));
    assert_json(ev, REJECTED("\"a\\u0000b\",\"sku\":null"));
    evk_event_destroy(ev);
}

/* ...but not in a key, which is text from then on: "a\u0000b" would be
 * the key "a". */
static void test_key_rule(void **state) {
    (void)state;
    assert_rejected("StockLevel", "{\"sku\":\"a\\u0000b\",\"available\":1}", EVK_ERR_VALIDATION,
                    "sku: key must not contain control characters (found U+0000)");
    assert_rejected("OrderCancelled",
                    "{\"order_id\":\"o\\u009f\",\"customer_id\":\"c\",\"status\":"
                    "\"REJECTED\",\"reason\":\"r\"}",
                    EVK_ERR_VALIDATION,
                    "order_id: key must not contain control characters (found U+009F)");
    assert_rejected("StockLevel", "{\"sku\":\"\",\"available\":1}", EVK_ERR_VALIDATION,
                    "sku: key must not be empty");
    evk_event_t *ev =
        parse("StockLevel", "{\"sku\":\"\\u00a0\\u00e9 \\ud83d\\ude00\",\"available\":1}");
    assert_string_equal(evk_event_key(ev), "\xc2\xa0\xc3\xa9 \xf0\x9f\x98\x80");
    evk_event_destroy(ev);
    char err[128];
    assert_int_equal(evk_key_check("a\x7f", 2, err, sizeof err), EVK_ERR_VALIDATION);
    assert_string_equal(err, "must not contain control characters (found U+007F)");
    assert_int_equal(evk_key_check("o-1", 3, NULL, 0), EVK_OK);
    assert_int_equal(evk_key_check(NULL, 1, err, sizeof err), EVK_ERR_INVALID_ARG);
}

static void test_to_json_is_exact_for_longs(void **state) {
    (void)state;
    const char *json = "{\"sku\":\"a\",\"available\":9223372036854775807}";
    evk_event_t *ev = parse("StockLevel", json);
    assert_json(ev, json);
    evk_event_destroy(ev);
}

static void test_bad_arguments(void **state) {
    (void)state;
    evk_event_t *ev;
    char err[128];
    assert_int_equal(evk_event_from_json(NULL, "{}", 2, &ev, err, sizeof err),
                     EVK_ERR_INVALID_ARG);
    assert_null(ev);
    assert_int_equal(evk_event_from_json(schema("StockLevel"), "{}", 2, NULL, err, sizeof err),
                     EVK_ERR_INVALID_ARG);
    char *out;
    assert_int_equal(evk_event_to_json(NULL, &out, NULL), EVK_ERR_INVALID_ARG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_and_key), cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_top_level),     cmocka_unit_test(test_missing_and_unknown),
        cmocka_unit_test(test_ranges),        cmocka_unit_test(test_enum_symbols),
        cmocka_unit_test(test_invalid_json),  cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_unions),        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_key_rule),      cmocka_unit_test(test_to_json_is_exact_for_longs),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, codec_load_catalog, codec_free_catalog);
}
