/* Rules on orders beyond their schema, shared by evk-order (place, publish,
 * generate) and evk-produce, so that every producer accepts the same orders
 * as the services (docs/CLI.md, "evk-order"); the rules themselves live in
 * consumers/flow_rules.c. Each returns 0, or -1 with a reason in @p why for
 * the caller to prefix with the field or option it checked. */
#ifndef EVK_RULES_H
#define EVK_RULES_H

#include <stddef.h>

#include "lines.h"

/* An id (a customer, a SKU): evk_key_check()'s rule, since ids become keys
 * downstream (inventory.levels is keyed by SKU). */
int rule_id(const char *s, size_t len, char *why, size_t why_size);

/* A currency: an ISO 4217 code, three upper-case letters (flow_currency_ok). */
int rule_currency(const char *s, size_t len, char *why, size_t why_size);

/* The rules of @p s's type for lines_publish(), or NULL when it has none. */
lines_rule_t *rules_for(const evk_schema_t *s);

#endif
