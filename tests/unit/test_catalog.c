/* The schema catalog: the real one and a fixture, what each entry builds,
 * and every catalog and schema error it names. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "evkit/schema.h"
#include "codec.h"
#include "internal.h"

static char errstr[512];

/* Directory of a catalog fixture under tests/data/catalog. */
static const char *fixture(const char *name) {
    static char path[512];
    snprintf(path, sizeof(path), "%s/catalog/%s", getenv("EVK_TEST_DATA"), name);
    return path;
}

static evk_catalog_t *load_ok(const char *dir) {
    evk_catalog_t *cat = NULL;
    if (evk_catalog_load(dir, &cat, errstr, sizeof(errstr))) fail_msg("%s: %s", dir, errstr);
    return cat;
}

/* Loading fixture @p name fails with @p want and errstr "<fixture dir>/<rest>". */
static void assert_load_fails(const char *name, evk_err_t want, const char *rest) {
    char expect[2048];
    evk_catalog_t *cat = NULL;
    snprintf(expect, sizeof(expect), "%s/%s", fixture(name), rest);
    assert_int_equal(evk_catalog_load(fixture(name), &cat, errstr, sizeof(errstr)), want);
    assert_null(cat);
    assert_string_equal(errstr, expect);
}

static void test_real_catalog(void **state) {
    (void)state;
    evk_catalog_t *cat = load_ok(getenv("EVK_SCHEMAS_DIR"));
    assert_int_equal(evk_catalog_count(cat), 18);

    const evk_schema_t *s = evk_catalog_find(cat, "shop.orders.OrderPlaced");
    assert_non_null(s);
    assert_ptr_equal(evk_catalog_find(cat, "OrderPlaced"), s);
    assert_ptr_equal(evk_catalog_by_id(cat, 1), s);
    assert_ptr_equal(evk_catalog_at(cat, 0), s);
    assert_string_equal(evk_schema_type(s), "shop.orders.OrderPlaced");
    assert_string_equal(evk_schema_name(s), "OrderPlaced");
    assert_string_equal(evk_schema_topic(s), "orders");
    assert_string_equal(evk_schema_key_field(s), "order_id");
    assert_int_equal(evk_schema_id(s), 1);
    assert_false(evk_schema_changelog(s));
    assert_true(evk_schema_changelog(evk_catalog_find(cat, "OrderStatus")));

    s = evk_catalog_by_id(cat, 12);
    assert_non_null(s);
    assert_string_equal(evk_schema_type(s), "shop.inventory.StockLevel");
    assert_string_equal(evk_schema_topic(s), "inventory.levels");
    assert_string_equal(evk_schema_key_field(s), "sku");

    assert_null(evk_catalog_find(cat, "NoSuchEvent"));
    assert_null(evk_catalog_find(cat, "shop.payments.OrderPlaced"));
    assert_null(evk_catalog_by_id(cat, 0));
    assert_null(evk_catalog_by_id(cat, 99));
    assert_null(evk_catalog_at(cat, 18));
    evk_catalog_destroy(cat);
}

/* Every entry carries what the codec needs, consistent with its schema. */
static void test_entry_artifacts(void **state) {
    (void)state;
    evk_catalog_t *cat = load_ok(getenv("EVK_SCHEMAS_DIR"));
    for (size_t i = 0; i < evk_catalog_count(cat); i++) {
        const evk_schema_t *s = evk_catalog_at(cat, i);
        avro_schema_t again = NULL;
        const char *json = evk_schema_json(s);
        assert_ptr_equal(evk_catalog_find(cat, evk_schema_name(s)), s);
        assert_ptr_equal(evk_catalog_by_id(cat, evk_schema_id(s)), s);
        assert_true(is_avro_record(evk_schema_avro(s)));
        assert_int_equal(avro_schema_from_json_length(json, strlen(json), &again), 0);
        assert_true(avro_schema_equal(again, evk_schema_avro(s)));
        avro_schema_decref(again);
        assert_non_null(evk__schema_iface(s));
        const json_t *doc = evk__schema_doc(s);
        assert_true(json_is_array(json_object_get(doc, "fields")));
        assert_string_equal(json_string_value(json_object_get(doc, "name")),
                            evk_schema_name(s));
    }
    evk_catalog_destroy(cat);
}

/* The generic value class must build values of the entry's schema. */
static void test_iface_builds_values(void **state) {
    (void)state;
    evk_catalog_t *cat = load_ok(getenv("EVK_SCHEMAS_DIR"));
    const evk_schema_t *s = evk_catalog_find(cat, "StockLevel");
    avro_value_t value, field;
    assert_int_equal(avro_generic_value_new(evk__schema_iface(s), &value), 0);
    assert_int_equal(avro_value_get_by_name(&value, "sku", &field, NULL), 0);
    assert_int_equal(avro_value_set_string(&field, "SKU-1"), 0);
    avro_value_decref(&value);
    evk_catalog_destroy(cat);
}

static void test_fixture_catalog(void **state) {
    (void)state;
    evk_catalog_t *cat = load_ok(fixture("schemas"));
    assert_int_equal(evk_catalog_count(cat), 2);
    const evk_schema_t *note = evk_catalog_find(cat, "Note");
    assert_non_null(note);
    assert_null(evk_schema_key_field(note));
    assert_ptr_equal(evk_catalog_by_id(cat, 40), note);
    assert_string_equal(evk_schema_key_field(evk_catalog_by_id(cat, 7)), "id");
    evk_catalog_destroy(cat);

    /* A trailing slash on the directory is harmless. */
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/", fixture("schemas"));
    cat = load_ok(dir);
    evk_catalog_destroy(cat);
    evk_catalog_destroy(NULL);
}

static void test_catalog_errors(void **state) {
    (void)state;
    assert_load_fails("absent", EVK_ERR_IO, "catalog.cfg: No such file or directory");
    assert_load_fails("syntax", EVK_ERR_CONFIG, "catalog.cfg:3: syntax error");
    assert_load_fails("no_events", EVK_ERR_CONFIG, "catalog.cfg: events: missing");
    assert_load_fails("missing_topic", EVK_ERR_CONFIG,
                      "catalog.cfg:3: events[1].topic: missing");
    assert_load_fails("unknown_field", EVK_ERR_CONFIG,
                      "catalog.cfg:3: events[0].kee: unknown field");
    assert_load_fails("bad_changelog", EVK_ERR_CONFIG,
                      "catalog.cfg:3: events[0].changelog: expected true or false");
    assert_load_fails("bad_id", EVK_ERR_CONFIG,
                      "catalog.cfg:2: events[0].id: expected a positive integer");
    assert_load_fails("dup_id", EVK_ERR_CONFIG,
                      "catalog.cfg:5: events[2].id: duplicate id 5 (also events[0])");
    assert_load_fails("dup_type", EVK_ERR_CONFIG,
                      "catalog.cfg:3: events[1].type: duplicate type test.shop.Item (also "
                      "events[0])");
    assert_load_fails("dup_name", EVK_ERR_CONFIG,
                      "catalog.cfg:3: events[1].type: duplicate short name Item (also "
                      "events[0])");
}

static void test_schema_errors(void **state) {
    (void)state;
    char rest[1024];
    snprintf(rest, sizeof(rest),
             "catalog.cfg:3: events[0].schema: %s/Missing.avsc: No such file or directory",
             fixture("no_schema"));
    assert_load_fails("no_schema", EVK_ERR_IO, rest);
    assert_load_fails("bad_avsc", EVK_ERR_SCHEMA,
                      "../schemas/Invalid.avsc: Unknown Avro \"type\": strin");
    assert_load_fails("not_record", EVK_ERR_SCHEMA,
                      "../schemas/Color.avsc: expected a record schema");
    assert_load_fails("mismatch", EVK_ERR_SCHEMA,
                      "../schemas/Note.avsc: record name test.shop.Note does not match catalog "
                      "type test.shop.Notes");
    assert_load_fails(
        "key_not_string", EVK_ERR_SCHEMA,
        "catalog.cfg:3: events[0].key: field \"count\" of test.shop.Item is not a "
        "string");
    assert_load_fails("key_missing", EVK_ERR_SCHEMA,
                      "catalog.cfg:3: events[0].key: test.shop.Item has no field \"sku\"");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_catalog),        cmocka_unit_test(test_entry_artifacts),
        cmocka_unit_test(test_iface_builds_values), cmocka_unit_test(test_fixture_catalog),
        cmocka_unit_test(test_catalog_errors),      cmocka_unit_test(test_schema_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
