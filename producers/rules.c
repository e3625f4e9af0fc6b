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

/* @p rule on the string field @p field of @p rec, which errors call @p path. */
static int check_field(const avro_value_t *rec, const char *field, const char *path,
                       text_rule_t *rule, char *errstr, size_t errstr_size) {
    avro_value_t v;
    const char *s = NULL;
    size_t size = 0;
    char why[256];
    if (avro_value_get_by_name(rec, field, &v, NULL) || avro_value_get_string(&v, &s, &size)) {
        snprintf(errstr, errstr_size, "%s: not a string field", path);
        return -1;
    }
    if (!rule(s, size ? size - 1 : 0, why, sizeof why)) return 0; /* size counts the NUL */
    snprintf(errstr, errstr_size, "%s: %s", path, why);
    return -1;
}

/* A string field as C text, NULL if @p rec has none. */
static const char *text(const avro_value_t *rec, const char *field) {
    avro_value_t v;
    const char *s = NULL;
    size_t size;
    if (avro_value_get_by_name(rec, field, &v, NULL) || avro_value_get_string(&v, &s, &size))
        return NULL;
    return s;
}

static int64_t number(const avro_value_t *rec, const char *field) {
    avro_value_t v;
    int32_t i;
    int64_t l = 0;
    if (avro_value_get_by_name(rec, field, &v, NULL)) return 0;
    if (!avro_value_get_int(&v, &i)) return i;
    return avro_value_get_long(&v, &l) ? 0 : l;
}

/* The ids as the wire has them, NUL bytes included: a C string would hide
 * one (the reader has held the key, order_id, to the same rule already). */
static int ids_rule(const avro_value_t *order, const avro_value_t *items, size_t n,
                    char *errstr, size_t errstr_size) {
    avro_value_t item;
    char path[48];
    if (check_field(order, "customer_id", "customer_id", rule_id, errstr, errstr_size))
        return -1;
    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof path, "items[%zu].sku", i);
        if (avro_value_get_by_index(items, i, &item, NULL) ||
            check_field(&item, "sku", path, rule_id, errstr, errstr_size))
            return -1;
    }
    return 0;
}

/* OrderPlaced: the flow's own rules (consumers/flow_rules.h), so that a
 * producer refuses what inventory-service would reject. */
static int order_rule(const avro_value_t *order, char *errstr, size_t errstr_size) {
    avro_value_t items, item;
    size_t n = 0;
    if (avro_value_get_by_name(order, "items", &items, NULL) ||
        avro_value_get_size(&items, &n)) {
        snprintf(errstr, errstr_size, "items: not an array field");
        return -1;
    }
    if (ids_rule(order, &items, n, errstr, errstr_size)) return -1;
    flow_line_t *lines = calloc(n ? n : 1, sizeof *lines);
    if (!lines) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n && !avro_value_get_by_index(&items, i, &item, NULL); i++)
        lines[i] = (flow_line_t){text(&item, "sku"), number(&item, "quantity"),
                                 number(&item, "unit_price_cents")};
    flow_order_t o = {text(order, "order_id"), text(order, "customer_id"),
                      text(order, "currency"), lines, n};
    int64_t total;
    int ok = flow_check_order(&o, &total, errstr, errstr_size);
    free(lines);
    return ok ? 0 : -1;
}

/* By short name, as evk-order finds its OrderPlaced in the catalog. */
lines_rule_t *rules_for(const evk_schema_t *s) {
    return strcmp(evk_schema_name(s), "OrderPlaced") ? NULL : order_rule;
}
