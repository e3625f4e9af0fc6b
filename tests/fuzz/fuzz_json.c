/* libFuzzer target: JSON -> Avro as evk-produce does it
 * (evk_event_from_json() on one input line), then the resulting event
 * through fuzz_check_roundtrip().
 *
 * Input layout: byte 0 picks the schema (index into both catalogs' entries,
 * modulo their number), the rest is the JSON text. */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz_support.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    size_t n0 = evk_catalog_count(fuzz_catalogs[0]), n1 = evk_catalog_count(fuzz_catalogs[1]);
    size_t pick = data[0] % (n0 + n1);
    const evk_schema_t *s = pick < n0 ? evk_catalog_at(fuzz_catalogs[0], pick)
                                      : evk_catalog_at(fuzz_catalogs[1], pick - n0);
    evk_event_t *ev;
    char errstr[512];
    evk_err_t err =
        evk_event_from_json(s, (const char *)data + 1, size - 1, &ev, errstr, sizeof errstr);
    if (err) {
        FUZZ_ASSERT(errstr[0], "error %d without a message", (int)err);
        return 0;
    }
    fuzz_check_roundtrip(ev);
    evk_event_destroy(ev);
    return 0;
}
