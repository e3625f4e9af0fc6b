/* Order rules (rules.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow_rules.h"
#include "rules.h"

typedef int(text_rule_t)(const char *s, size_t len, char *why, size_t why_size);

int rule_id(const char *s, size_t len, char *why, size_t why_size) {
    return evk_key_check(s, len, why, why_size) ? -1 : 0;
}

int rule_currency(const char *s, size_t len, char *why, size_t why_size) {
    return flow_currency_ok(s, len, why, why_size) ? 0 : -1;
}

/* Field positions of OrderPlaced and of its items, found by name once per
 * schema rather than per record: lookups by name were a third of the rules'
 * share of evk-produce's time (docs/PERFORMANCE.md). -1 for a field the
 * schema lacks. */
typedef struct {
    avro_schema_t order, item;
    int order_id, customer_id, currency, items, sku, quantity, price;
} order_fields_t;

static const order_fields_t *fields_of(const avro_value_t *order) {
    static order_fields_t f;
    avro_schema_t schema = avro_value_get_schema(order);
    if (schema == f.order) return &f;
    f.order = schema;
    f.order_id = avro_schema_record_field_get_index(schema, "order_id");
    f.customer_id = avro_schema_record_field_get_index(schema, "customer_id");
    f.currency = avro_schema_record_field_get_index(schema, "currency");
    f.items = avro_schema_record_field_get_index(schema, "items");
    avro_schema_t array =
        f.items < 0 ? NULL : avro_schema_record_field_get_by_index(schema, f.items);
    avro_schema_t item = array && is_avro_array(array) ? avro_schema_array_items(array) : NULL;
    f.item = item && is_avro_record(item) ? item : NULL;
    f.sku = f.item ? avro_schema_record_field_get_index(f.item, "sku") : -1;
    f.quantity = f.item ? avro_schema_record_field_get_index(f.item, "quantity") : -1;
    f.price = f.item ? avro_schema_record_field_get_index(f.item, "unit_price_cents") : -1;
    return &f;
}

/* Field @p index of @p rec as a string (its size counts the NUL), or -1. */
static int field_string(const avro_value_t *rec, int index, const char **s, size_t *size) {
    avro_value_t v;
    if (index < 0 || avro_value_get_by_index(rec, (size_t)index, &v, NULL)) return -1;
    return avro_value_get_string(&v, s, size) ? -1 : 0;
}

/* A string field as C text, NULL if @p rec has none. */
static const char *text(const avro_value_t *rec, int index) {
    const char *s = NULL;
    size_t size;
    return field_string(rec, index, &s, &size) ? NULL : s;
}

static int64_t number(const avro_value_t *rec, int index) {
    avro_value_t v;
    int32_t i;
    int64_t l = 0;
    if (index < 0 || avro_value_get_by_index(rec, (size_t)index, &v, NULL)) return 0;
    if (!avro_value_get_int(&v, &i)) return i;
    return avro_value_get_long(&v, &l) ? 0 : l;
}

/* @p rule on string field @p index of @p rec, which errors call @p name, or
 * items[@p item].@p name for an item (@p item < 0: a field of the order). */
static int check_field(const avro_value_t *rec, int index, const char *name, long item,
                       text_rule_t *rule, char *errstr, size_t errstr_size) {
    const char *s = NULL;
    size_t size = 0;
    char why[256], path[64];
    int ok = !field_string(rec, index, &s, &size);
    /* size counts the NUL */
    if (ok && !rule(s, size ? size - 1 : 0, why, sizeof why)) return 0;
    if (item < 0)
        snprintf(path, sizeof path, "%s", name);
    else
        snprintf(path, sizeof path, "items[%ld].%s", item, name);
    snprintf(errstr, errstr_size, "%s: %s", path, ok ? why : "not a string field");
    return -1;
}

/* The ids as the wire has them, NUL bytes included: a C string would hide
 * one (the reader has held the key, order_id, to the same rule already). */
static int ids_rule(const avro_value_t *order, const avro_value_t *items, size_t n,
                    const order_fields_t *f, char *errstr, size_t errstr_size) {
    avro_value_t item;
    if (check_field(order, f->customer_id, "customer_id", -1, rule_id, errstr, errstr_size))
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (avro_value_get_by_index(items, i, &item, NULL) ||
            check_field(&item, f->sku, "sku", (long)i, rule_id, errstr, errstr_size))
            return -1;
    }
    return 0;
}

#define ORDER_LINES_INLINE 16

/* OrderPlaced: the flow's own rules (consumers/flow_rules.h), so that a
 * producer refuses what inventory-service would reject. */
static int order_rule(const avro_value_t *order, char *errstr, size_t errstr_size) {
    avro_value_t items, item;
    size_t n = 0;
    const order_fields_t *f = fields_of(order);
    if (f->items < 0 || avro_value_get_by_index(order, (size_t)f->items, &items, NULL) ||
        avro_value_get_size(&items, &n)) {
        snprintf(errstr, errstr_size, "items: not an array field");
        return -1;
    }
    if (ids_rule(order, &items, n, f, errstr, errstr_size)) return -1;
    flow_line_t inline_lines[ORDER_LINES_INLINE];
    flow_line_t *lines = n <= ORDER_LINES_INLINE ? inline_lines : calloc(n, sizeof *lines);
    if (!lines) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n && !avro_value_get_by_index(&items, i, &item, NULL); i++)
        lines[i] = (flow_line_t){text(&item, f->sku), number(&item, f->quantity),
                                 number(&item, f->price)};
    flow_order_t o = {text(order, f->order_id), text(order, f->customer_id),
                      text(order, f->currency), lines, n};
    int64_t total;
    int ok = flow_check_order(&o, &total, errstr, errstr_size);
    if (lines != inline_lines) free(lines);
    return ok ? 0 : -1;
}

/* By short name, as evk-order finds its OrderPlaced in the catalog. */
lines_rule_t *rules_for(const evk_schema_t *s) {
    return strcmp(evk_schema_name(s), "OrderPlaced") ? NULL : order_rule;
}
