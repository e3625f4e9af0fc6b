/* Schema evolution through the catalog: a reader of OrderPlaced version 2
 * decodes frames written with version 1 (tests/data/evolution), and
 * incompatible versions fail at load naming the field. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "evkit/event.h"
#include "evkit/schema.h"

static char errstr[1024];

static const char *fixture(const char *name) {
    static char path[512];
    snprintf(path, sizeof path, "%s/evolution/%s", getenv("EVK_TEST_DATA"), name);
    return path;
}

static evk_catalog_t *load(const char *name) {
    evk_catalog_t *cat = NULL;
    if (evk_catalog_load(fixture(name), &cat, errstr, sizeof errstr))
        fail_msg("%s: %s", name, errstr);
    return cat;
}

static const char v1_order[] =
    "{\"order_id\":\"o-1\",\"customer_id\":\"c-1\",\"items\":[{\"sku\":\"SKU-1\",\"quantity\":"
    "3,"
    "\"unit_price_cents\":1999}],\"currency\":\"USD\",\"note\":\"ring twice\","
    "\"created_at\":1700000000000}";

/* A version 1 frame (schema id 101) of v1_order. */
static void v1_frame(void **frame, size_t *len) {
    evk_catalog_t *v1 = load("v1");
    evk_event_t *ev = NULL;
    const evk_schema_t *s = evk_catalog_find(v1, "OrderPlaced");
    assert_int_equal(
        evk_event_from_json(s, v1_order, strlen(v1_order), &ev, errstr, sizeof errstr), EVK_OK);
    assert_int_equal(evk_event_encode(ev, frame, len), EVK_OK);
    assert_int_equal(((unsigned char *)*frame)[4], 101);
    evk_event_destroy(ev);
    evk_catalog_destroy(v1);
}

static void test_newer_reader_decodes_older_writer(void **state) {
    (void)state;
    void *frame;
    size_t len;
    v1_frame(&frame, &len);
    evk_catalog_t *v2 = load("v2");
    evk_event_t *ev = NULL;
    assert_int_equal(
        evk_event_decode(v2, frame, len, "o-1", 3, NULL, &ev, errstr, sizeof errstr), EVK_OK);
    assert_ptr_equal(evk_event_schema(ev), evk_catalog_by_id(v2, 1));

    char *json = NULL;
    size_t jlen;
    assert_int_equal(evk_event_to_json(ev, &json, &jlen), EVK_OK);
    /* channel and discount_cents take their defaults, quantity is widened,
     * currency keeps the writer's value, note is not in version 2. */
    assert_string_equal(json,
                        "{\"order_id\":\"o-1\",\"customer_id\":\"c-1\",\"channel\":\"web\","
                        "\"items\":[{\"sku\":\"SKU-1\",\"quantity\":3,\"unit_price_cents\":"
                        "1999,\"discount_cents\":0}],\"currency\":\"USD\",\"created_at\":"
                        "1700000000000}");
    assert_string_equal(evk_event_key(ev), "o-1");
    free(json);

    /* The event is a version 2 event: it encodes with version 2's id. */
    void *again;
    size_t again_len;
    assert_int_equal(evk_event_encode(ev, &again, &again_len), EVK_OK);
    assert_int_equal(((unsigned char *)again)[4], 1);
    free(again);
    evk_event_destroy(ev);
    evk_catalog_destroy(v2);
    free(frame);
}

/* The writer's schema, not the reader's, bounds the body. */
static void test_older_frame_still_scanned(void **state) {
    (void)state;
    void *frame;
    size_t len;
    v1_frame(&frame, &len);
    evk_catalog_t *v2 = load("v2");
    evk_event_t *ev = NULL;
    assert_int_equal(
        evk_event_decode(v2, frame, len - 3, NULL, 0, NULL, &ev, errstr, sizeof errstr),
        EVK_ERR_TRUNCATED);
    assert_null(ev);
    assert_non_null(strstr(errstr, "OrderPlaced body"));
    evk_catalog_destroy(v2);
    free(frame);
}

static void assert_load_fails(const char *name, evk_err_t want, const char *needle) {
    evk_catalog_t *cat = NULL;
    assert_int_equal(evk_catalog_load(fixture(name), &cat, errstr, sizeof errstr), want);
    assert_null(cat);
    if (!strstr(errstr, needle)) fail_msg("\"%s\" not in \"%s\"", needle, errstr);
}

static void test_incompatible_type_change(void **state) {
    (void)state;
    assert_load_fails("incompatible", EVK_ERR_SCHEMA, "incompatible/catalog.cfg:4: ");
    assert_load_fails(
        "incompatible", EVK_ERR_SCHEMA,
        "OrderPlaced.v3.avsc: OrderPlaced: schema id 103 cannot be "
        "read as the catalog's version: customer_id: writer's type long cannot be "
        "read as string");
}

static void test_added_field_without_default(void **state) {
    (void)state;
    assert_load_fails("nodefault", EVK_ERR_SCHEMA,
                      "channel: not in the writer's schema and has no default");
}

static void test_writer_id_must_be_unique(void **state) {
    (void)state;
    assert_load_fails("dupid", EVK_ERR_CONFIG,
                      "events[0].writers[0].id: duplicate id 1 (also OrderPlaced)");
}

static void test_unknown_id_still_unknown(void **state) {
    (void)state;
    static const unsigned char frame[] = {0, 0, 0, 0, 102, 0};
    evk_catalog_t *v2 = load("v2");
    evk_event_t *ev = NULL;
    assert_int_equal(
        evk_event_decode(v2, frame, sizeof frame, NULL, 0, NULL, &ev, errstr, sizeof errstr),
        EVK_ERR_UNKNOWN_SCHEMA_ID);
    assert_string_equal(errstr, "schema id 102 is not in the catalog");
    evk_catalog_destroy(v2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_newer_reader_decodes_older_writer),
        cmocka_unit_test(test_older_frame_still_scanned),
        cmocka_unit_test(test_incompatible_type_change),
        cmocka_unit_test(test_added_field_without_default),
        cmocka_unit_test(test_writer_id_must_be_unique),
        cmocka_unit_test(test_unknown_id_still_unknown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
