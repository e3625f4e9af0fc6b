/* evk_err_t names and messages. */
#include <stddef.h>

#include "evkit/error.h"

struct evk_err_desc {
    const char *name;
    const char *desc;
};

/* Indexed by code: a code added at the end without an entry fails the static
 * assertion below, one added in the middle leaves a hole that reads as an
 * unknown code instead of shifting every later message. */
static const struct evk_err_desc evk_errs[] = {
    [EVK_OK] = {"EVK_OK", "success"},
    [EVK_ERR_INVALID_ARG] = {"EVK_ERR_INVALID_ARG", "invalid argument"},
    [EVK_ERR_NOMEM] = {"EVK_ERR_NOMEM", "out of memory"},
    [EVK_ERR_IO] = {"EVK_ERR_IO", "I/O error"},
    [EVK_ERR_CONFIG] = {"EVK_ERR_CONFIG", "invalid configuration"},
    [EVK_ERR_SCHEMA] = {"EVK_ERR_SCHEMA", "invalid schema"},
    [EVK_ERR_UNKNOWN_TYPE] = {"EVK_ERR_UNKNOWN_TYPE", "unknown event type"},
    [EVK_ERR_JSON] = {"EVK_ERR_JSON", "malformed JSON"},
    [EVK_ERR_VALIDATION] = {"EVK_ERR_VALIDATION", "event does not match its schema"},
    [EVK_ERR_NOT_FOUND] = {"EVK_ERR_NOT_FOUND", "field not found"},
    [EVK_ERR_TRUNCATED] = {"EVK_ERR_TRUNCATED", "truncated message"},
    [EVK_ERR_BAD_MAGIC] = {"EVK_ERR_BAD_MAGIC", "bad magic byte"},
    [EVK_ERR_UNKNOWN_SCHEMA_ID] = {"EVK_ERR_UNKNOWN_SCHEMA_ID", "unknown schema id"},
    [EVK_ERR_DECODE] = {"EVK_ERR_DECODE", "Avro decode error"},
    [EVK_ERR_KAFKA] = {"EVK_ERR_KAFKA", "Kafka error"},
    [EVK_ERR_DELIVERY] = {"EVK_ERR_DELIVERY", "message delivery failed"},
    [EVK_ERR_TIMEOUT] = {"EVK_ERR_TIMEOUT", "timed out"},
    [EVK_ERR_RETRY] = {"EVK_ERR_RETRY", "transient failure, retry"},
    [EVK_ERR_FATAL] = {"EVK_ERR_FATAL", "fatal error"},
};

_Static_assert(sizeof(evk_errs) / sizeof(evk_errs[0]) == EVK_ERR__CNT,
               "every evk_err_t needs a name and a description");

static const struct evk_err_desc *evk_err_lookup(evk_err_t err) {
    if ((unsigned)err >= EVK_ERR__CNT || !evk_errs[err].name) return NULL;
    return &evk_errs[err];
}

const char *evk_err2str(evk_err_t err) {
    const struct evk_err_desc *d = evk_err_lookup(err);
    return d ? d->desc : "unknown error";
}

const char *evk_err_name(evk_err_t err) {
    const struct evk_err_desc *d = evk_err_lookup(err);
    return d ? d->name : "EVK_ERR_UNKNOWN";
}
