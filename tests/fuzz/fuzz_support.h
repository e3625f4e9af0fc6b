/* Shared by the fuzz targets: the two catalogs they decode and encode with,
 * and the round-trip checks that turn a silent codec bug into a crash. */
#ifndef EVK_FUZZ_SUPPORT_H
#define EVK_FUZZ_SUPPORT_H

#include <stddef.h>
#include <stdint.h>
#include "evkit/event.h"
#include "evkit/schema.h"

/* libFuzzer's entry points. Each target defines LLVMFuzzerTestOneInput;
 * LLVMFuzzerInitialize, shared, loads both catalogs (paths baked in by
 * CMake) and aborts if either fails, since a run against no schema would
 * fuzz nothing. */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Loaded by LLVMFuzzerInitialize(): [0] the flow's schemas/, [1]
 * tests/fuzz/schemas (every Avro type, recursion). */
extern evk_catalog_t *fuzz_catalogs[2];

/* Checks every valid event must pass: it encodes, the frame decodes to an
 * event that encodes to the same bytes, and its JSON reads back to that same
 * frame. Aborts, with the evidence on stderr, when one fails. */
void fuzz_check_roundtrip(evk_event_t *ev);

#define FUZZ_ASSERT(cond, ...)                                                                 \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "fuzz: %s:%d: %s: ", __FILE__, __LINE__, #cond);                   \
            fprintf(stderr, __VA_ARGS__);                                                      \
            fputc('\n', stderr);                                                               \
            abort();                                                                           \
        }                                                                                      \
    } while (0)

#endif
