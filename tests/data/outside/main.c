/*
 * A program built outside the source tree against the installed evkit, the
 * way a user builds one (tests/e2e/pkgconfig_test.sh):
 *
 *   cc main.c $(pkg-config --cflags --libs evkit)
 *
 * It loads the installed catalog from SCHEMAS_DIR, encodes an OrderPlaced to
 * the wire format and checks that it decodes back to the same JSON.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <evkit/evkit.h>

static const char ORDER[] = "{\"order_id\":\"o-1\",\"customer_id\":\"c-1\",\"items\":[{\"sku\":"
                            "\"sku-1\",\"quantity\":2,\"unit_price_cents\":350}],"
                            "\"currency\":\"EUR\",\"created_at\":1700000000000}";

static int fail(const char *what, evk_err_t err, const char *errstr) {
    fprintf(stderr, "outside: %s: %s: %s\n", what, evk_err_name(err), errstr);
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "Usage: outside SCHEMAS_DIR\n");
        return 1;
    }
    /* The library's own default, which the test compares with evkit.pc's datadir. */
    evk_config_t *cfg = evk_config_new();
    printf("default schemas dir: %s\n", evk_config_schemas_dir(cfg));
    evk_config_destroy(cfg);

    char errstr[512] = "";
    evk_catalog_t *cat;
    evk_err_t err = evk_catalog_load(argv[1], &cat, errstr, sizeof errstr);
    if (err) return fail("catalog", err, errstr);
    const evk_schema_t *s = evk_catalog_find(cat, "OrderPlaced");
    evk_event_t *ev = NULL, *back = NULL;
    void *frame = NULL;
    char *json = NULL;
    size_t len, json_len;
    if (!s) err = EVK_ERR_UNKNOWN_TYPE;
    if (!err) err = evk_event_from_json(s, ORDER, strlen(ORDER), &ev, errstr, sizeof errstr);
    if (!err) err = evk_event_encode(ev, &frame, &len);
    if (!err)
        err = evk_event_decode(cat, frame, len, NULL, 0, NULL, &back, errstr, sizeof errstr);
    if (!err) err = evk_event_to_json(back, &json, &json_len);
    int rc = err ? fail("OrderPlaced", err, errstr) : 0;
    if (!err && strcmp(json, ORDER)) {
        fprintf(stderr, "outside: round trip changed the event:\n  %s\n  %s\n", ORDER, json);
        rc = 1;
    }
    if (!rc)
        printf("%s, schema id %d: round trip ok\n", evk_event_type(back),
               (int)evk_schema_id(evk_event_schema(back)));
    free(json);
    free(frame);
    evk_event_destroy(back);
    evk_event_destroy(ev);
    evk_catalog_destroy(cat);
    return rc;
}
