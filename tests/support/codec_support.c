/* What the codec tests share (codec_support.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "codec_support.h"

evk_catalog_t *cat;

int codec_load_catalog(void **state) {
    char err[512] = "";
    (void)state;
    if (evk_catalog_load(getenv("EVK_SCHEMAS_DIR"), &cat, err, sizeof err) != EVK_OK) {
        fprintf(stderr, "catalog: %s\n", err);
        return -1;
    }
    return 0;
}

int codec_free_catalog(void **state) {
    (void)state;
    evk_catalog_destroy(cat);
    return 0;
}

const evk_schema_t *schema(const char *type) {
    const evk_schema_t *s = evk_catalog_find(cat, type);
    assert_non_null(s);
    return s;
}
