/* Private helpers shared by the library's translation units. Not installed. */
#ifndef EVK_INTERNAL_H
#define EVK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <avro.h>
#include <jansson.h>
#include "evkit/error.h"
#include "evkit/schema.h"

/* Format into a caller's errstr buffer; tolerates errstr == NULL. Returns err
 * so that failure paths read `return evk_fail(EVK_ERR_X, errstr, size, ...)`. */
evk_err_t evk_fail(evk_err_t err, char *errstr, size_t errstr_size, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* strdup that accepts NULL. */
char *evk_strdup0(const char *s);

/* Monotonic clock in milliseconds, for timeouts and backoff. */
int64_t evk_now_ms(void);

/* Catalog internals the codec needs (implemented in catalog.c). */

/* avro-c generic value class for the entry's schema; created once at load so
 * that events do not pay for it. Owned by the catalog. */
avro_value_iface_t *evk_schema_iface(const evk_schema_t *s);

/* The parsed .avsc document, for field defaults (avro-c does not expose
 * them). Owned by the catalog. */
const json_t *evk_schema_doc(const evk_schema_t *s);

#endif
