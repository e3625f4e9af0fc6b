/* What the codec tests share: the catalog of schemas/ for a cmocka group. */
#ifndef EVK_CODEC_SUPPORT_H
#define EVK_CODEC_SUPPORT_H

#include "evkit/event.h"

/* The catalog of $EVK_SCHEMAS_DIR, loaded by codec_load_catalog(). */
extern evk_catalog_t *cat;

/* cmocka group setup and teardown. */
int codec_load_catalog(void **state);
int codec_free_catalog(void **state);

/* The catalog's schema of @p type (the test fails without one). */
const evk_schema_t *schema(const char *type);

#endif
