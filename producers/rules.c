/* Order rules (rules.h). */
#include <stdio.h>
#include <string.h>

#include "rules.h"

typedef int(text_rule_t)(const char *s, size_t len, char *why, size_t why_size);

int rule_id(const char *s, size_t len, char *why, size_t why_size) {
    return evk_key_check(s, len, why, why_size) ? -1 : 0;
}

int rule_currency(const char *s, size_t len, char *why, size_t why_size) {
    int ok = len == 3;
    for (size_t i = 0; ok && i < len; i++)
        ok = s[i] >= 'A' && s[i] <= 'Z';
    if (!ok)
        snprintf(why, why_size, "must be an ISO 4217 code: three upper-case letters, e.g. EUR");
    return ok ? 0 : -1;
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

/* OrderPlaced, in field order. Its order_id is the key, which the reader
 * has held to evk_key_check() already. */
static int order_rule(const avro_value_t *order, char *errstr, size_t errstr_size) {
    avro_value_t items, item;
    size_t n = 0;
    char path[48];
    if (check_field(order, "customer_id", "customer_id", rule_id, errstr, errstr_size))
        return -1;
    if (avro_value_get_by_name(order, "items", &items, NULL) ||
        avro_value_get_size(&items, &n)) {
        snprintf(errstr, errstr_size, "items: not an array field");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof path, "items[%zu]", i);
        if (avro_value_get_by_index(&items, i, &item, NULL)) {
            snprintf(errstr, errstr_size, "%s: cannot be read", path);
            return -1;
        }
        snprintf(path, sizeof path, "items[%zu].sku", i);
        if (check_field(&item, "sku", path, rule_id, errstr, errstr_size)) return -1;
    }
    return check_field(order, "currency", "currency", rule_currency, errstr, errstr_size);
}

/* By short name, as evk-order finds its OrderPlaced in the catalog. */
lines_rule_t *rules_for(const evk_schema_t *s) {
    return strcmp(evk_schema_name(s), "OrderPlaced") ? NULL : order_rule;
}
