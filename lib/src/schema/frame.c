/* CloudEvents headers for a message that exists only as an encoded frame
 * (evk_json_reader_frame()), where building an event just for its metadata
 * would cost more than the encoding itself. */
#include "evkit/event.h"
#include "codec.h"
#include "internal.h"

rd_kafka_headers_t *evk__ce_headers(const evk_schema_t *s, const char *id, const char *source,
                                    const char *time, const char *correlation_id,
                                    const char *causation_id) {
    const char *const headers[][2] = {
        {"ce_specversion", "1.0"},
        {"ce_id", id},
        {"ce_type", evk_schema_type(s)},
        {"ce_source", source},
        {"ce_time", time},
        {"content-type", "application/avro"},
        {"correlation_id", correlation_id},
        {"causation_id", causation_id},
    };
    size_t n = sizeof headers / sizeof headers[0];
    rd_kafka_headers_t *h = rd_kafka_headers_new(n);
    for (size_t i = 0; h && i < n; i++) {
        if (headers[i][1]) rd_kafka_header_add(h, headers[i][0], -1, headers[i][1], -1);
    }
    return h;
}

evk_err_t evk_frame_headers(const evk_schema_t *s, const char *source,
                            const char *correlation_id, const char *causation_id,
                            rd_kafka_headers_t **out) {
    if (!s || !out) return EVK_ERR_INVALID_ARG;
    char id[37], now[32];
    evk_uuid4(id);
    evk_now_rfc3339(now);
    *out = evk__ce_headers(s, id, source, now, correlation_id, causation_id);
    return *out ? EVK_OK : EVK_ERR_NOMEM;
}
