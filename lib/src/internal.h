/* Private helpers shared by the library's translation units. Not installed. */
#ifndef EVK_INTERNAL_H
#define EVK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "evkit/error.h"

/* Format into a caller's errstr buffer; tolerates errstr == NULL. Returns err
 * so that failure paths read `return evk_fail(EVK_ERR_X, errstr, size, ...)`. */
evk_err_t evk_fail(evk_err_t err, char *errstr, size_t errstr_size, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* strdup that accepts NULL. */
char *evk_strdup0(const char *s);

/* Monotonic clock in milliseconds, for timeouts and backoff. */
int64_t evk_now_ms(void);

#endif
