/* libFuzzer target: the consumer's decoder, i.e. everything a Kafka message
 * can put in front of evk_event_decode() (which evk_event_from_message()
 * calls with the message's parts): CloudEvents headers, the key and the
 * Confluent frame (magic byte, schema id, Avro body).
 *
 * Input layout, so that mutations reach every part:
 *   byte 0         bit 0: catalog (0 the flow's, 1 tests/fuzz/schemas);
 *                  bits 1-3: number of headers
 *   per header     name length (1 byte), name, value length (1 byte, 0xff:
 *                  a NULL value), value
 *   key            length (1 byte, 0xff: no key), key
 *   the rest       the message value
 * A valid message must then survive fuzz_check_roundtrip(). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_support.h"

typedef struct {
    const uint8_t *p, *end;
} cursor_t;

/* A length-prefixed field; 0 when the input ends first. */
static int take(cursor_t *c, const uint8_t **data, size_t *len, int null_ok) {
    if (c->p >= c->end) return 0;
    size_t n = *c->p++;
    if (null_ok && n == 0xff) {
        *data = NULL;
        *len = 0;
        return 1;
    }
    if ((size_t)(c->end - c->p) < n) return 0;
    *data = c->p;
    *len = n;
    c->p += n;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    cursor_t c = {data + 1, data + size};
    const evk_catalog_t *cat = fuzz_catalogs[data[0] & 1];
    int nheaders = (data[0] >> 1) & 7;
    rd_kafka_headers_t *headers = rd_kafka_headers_new((size_t)nheaders);
    const uint8_t *key = NULL;
    size_t key_len = 0;
    int complete = 1;
    for (int i = 0; i < nheaders && complete; i++) {
        const uint8_t *name, *value;
        size_t name_len, value_len;
        complete = take(&c, &name, &name_len, 0) && take(&c, &value, &value_len, 1);
        if (complete)
            rd_kafka_header_add(headers, (const char *)name, (ssize_t)name_len, value,
                                (ssize_t)value_len);
    }
    if (complete) complete = take(&c, &key, &key_len, 1);
    if (complete) {
        evk_event_t *ev;
        char errstr[512];
        evk_err_t err = evk_event_decode(cat, c.p, (size_t)(c.end - c.p), key, key_len, headers,
                                         &ev, errstr, sizeof errstr);
        if (err) {
            FUZZ_ASSERT(errstr[0], "error %d without a message", (int)err);
        } else {
            rd_kafka_headers_t *out;
            FUZZ_ASSERT(evk_event_headers(ev, &out) == EVK_OK, "decoded event has no headers");
            rd_kafka_headers_destroy(out);
            fuzz_check_roundtrip(ev);
            evk_event_destroy(ev);
        }
    }
    rd_kafka_headers_destroy(headers);
    return 0;
}
