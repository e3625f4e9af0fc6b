/* Configuration: files, layering, the environment, secrets, typed and
 * unknown settings, Kafka properties, error names, numeric options. */
#include <stdarg.h>
#include <stddef.h>
#include <limits.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <unistd.h>

#include "evkit/cli.h"
#include "evkit/config.h"
#include "evkit/error.h"
#include "evkit/service.h"

extern char **environ;

static char errstr[512];

/* Path of a fixture under tests/data/config. */
static const char *fixture(const char *name) {
    static char path[512];
    snprintf(path, sizeof(path), "%s/config/%s", getenv("EVK_TEST_DATA"), name);
    return path;
}

static evk_config_t *load_ok(const char *name) {
    evk_config_t *cfg = evk_config_new();
    assert_non_null(cfg);
    evk_err_t err = evk_config_load(cfg, fixture(name), errstr, sizeof(errstr));
    if (err) fail_msg("%s: %s", name, errstr);
    return cfg;
}

/* Loading @p name fails with @p want and errstr "<path>:<rest>". */
static void assert_load_fails(const char *name, evk_err_t want, const char *rest) {
    char expect[2048];
    evk_config_t *cfg = evk_config_new();
    snprintf(expect, sizeof(expect), "%s:%s", fixture(name), rest);
    assert_int_equal(evk_config_load(cfg, fixture(name), errstr, sizeof(errstr)), want);
    assert_string_equal(errstr, expect);
    evk_config_destroy(cfg);
}

/* A file holding @p text, in @p path (a "/tmp/evk-cfg-XXXXXX" template). */
static void write_file(char *path, const char *text) {
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

/* Loading a file holding @p text fails with errstr "<its path>:<rest>". */
static void assert_text_fails(const char *text, const char *rest) {
    char path[] = "/tmp/evk-cfg-XXXXXX", expect[1024];
    write_file(path, text);
    evk_config_t *cfg = evk_config_new();
    snprintf(expect, sizeof(expect), "%s:%s", path, rest);
    assert_int_equal(evk_config_load(cfg, path, errstr, sizeof(errstr)), EVK_ERR_CONFIG);
    assert_string_equal(errstr, expect);
    evk_config_destroy(cfg);
    unlink(path);
}

/* A config loaded from a file holding @p text; the file is gone after. */
static evk_config_t *load_text(const char *text, char *path) {
    write_file(path, text);
    evk_config_t *cfg = evk_config_new();
    assert_non_null(cfg);
    if (evk_config_load(cfg, path, errstr, sizeof(errstr))) fail_msg("%s", errstr);
    unlink(path);
    return cfg;
}

/* Tests must not see the configuration variables of the shell or of ctest
 * (the EVK_* paths to test data stay). */
static int is_config_var(const char *entry) {
    static const char *const vars[] = {
        "EVK_CONFIG=", "EVK_BOOTSTRAP_SERVERS=", "EVK_SCHEMAS_DIR=", "EVK_KAFKA_",
        "EVK_SCHEMA_REGISTRY_"};
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        if (!strncmp(entry, vars[i], strlen(vars[i]))) return 1;
    return 0;
}

static void clear_evk_env(void) {
    char name[256];
    for (char **e = environ; *e;) {
        const char *eq = strchr(*e, '=');
        if (!eq || !is_config_var(*e)) {
            e++;
            continue;
        }
        snprintf(name, sizeof(name), "%.*s", (int)(eq - *e), *e);
        unsetenv(name); /* environ shifts down: look at the same slot again */
    }
}

static int reset_env(void **state) {
    (void)state;
    clear_evk_env();
    return 0;
}

static void test_error_names(void **state) {
    (void)state;
    for (int e = 0; e < EVK_ERR__CNT; e++) {
        assert_non_null(evk_err2str((evk_err_t)e));
        assert_string_not_equal(evk_err2str((evk_err_t)e), "unknown error");
        assert_memory_equal(evk_err_name((evk_err_t)e), "EVK_", 4);
        for (int o = 0; o < e; o++)
            assert_string_not_equal(evk_err_name((evk_err_t)e), evk_err_name((evk_err_t)o));
    }
    assert_string_equal(evk_err_name(EVK_ERR_BAD_MAGIC), "EVK_ERR_BAD_MAGIC");
    assert_string_equal(evk_err2str(EVK_ERR_UNKNOWN_SCHEMA_ID), "unknown schema id");
    assert_string_equal(evk_err2str(EVK_ERR__CNT), "unknown error");
    assert_string_equal(evk_err2str((evk_err_t)-1), "unknown error");
}

static void test_defaults(void **state) {
    (void)state;
    evk_config_t *cfg = evk_config_new();
    assert_string_equal(evk_config_kafka_get(cfg, "acks"), "all");
    assert_string_equal(evk_config_kafka_get(cfg, "enable.idempotence"), "true");
    assert_null(evk_config_kafka_get(cfg, "bootstrap.servers"));
    /* Not installed: the source tree this test was built from. */
    const char *dir = evk_config_schemas_dir(cfg), *src = getenv("EVK_SOURCE_DIR");
    char want[4096];
    assert_non_null(src);
    snprintf(want, sizeof want, "%s/schemas", src);
    assert_string_equal(dir, want);
    assert_string_equal(evk_config_get_string(cfg, "nowhere", "def"), "def");
    evk_config_destroy(cfg);
    evk_config_destroy(NULL);
}

static void test_load_values(void **state) {
    (void)state;
    evk_config_t *cfg = load_ok("full.cfg");
    assert_string_equal(evk_config_kafka_get(cfg, "bootstrap.servers"),
                        "file1:9092,file2:9092");
    assert_string_equal(evk_config_kafka_get(cfg, "socket.timeout.ms"), "30000");
    assert_string_equal(evk_config_kafka_get(cfg, "enable.idempotence"), "true");
    assert_string_equal(evk_config_kafka_get(cfg, "acks"), "all");
    assert_string_equal(evk_config_schemas_dir(cfg), "/srv/evkit/schemas");
    assert_string_equal(evk_config_get_string(cfg, "inventory-service.seed_file", NULL),
                        "config/stock.cfg");
    assert_string_equal(evk_config_get_string(cfg, "inventory-service.ratio", NULL), "0.25");
    assert_string_equal(evk_config_get_string(cfg, "inventory-service.warehouses[1]", NULL),
                        "south");
    assert_string_equal(evk_config_get_string(cfg, "inventory-service.limits[0]", NULL), "1");

    int64_t n;
    int b;
    assert_int_equal(
        evk_config_get_int(cfg, "inventory-service.retries", 0, &n, errstr, sizeof(errstr)),
        EVK_OK);
    assert_int_equal(n, 5);
    assert_int_equal(
        evk_config_get_int(cfg, "inventory-service.big", 0, &n, errstr, sizeof(errstr)),
        EVK_OK);
    assert_int_equal(n, 9000000000LL);
    assert_int_equal(
        evk_config_get_int(cfg, "inventory-service.absent", 42, &n, errstr, sizeof(errstr)),
        EVK_OK);
    assert_int_equal(n, 42);
    assert_int_equal(
        evk_config_get_bool(cfg, "inventory-service.enabled", 0, &b, errstr, sizeof(errstr)),
        EVK_OK);
    assert_true(b);
    evk_config_destroy(cfg);
}

/* errstr is "<full.cfg's path>:<rest>". */
static void assert_errstr_at(const char *rest) {
    char expect[1024];
    snprintf(expect, sizeof(expect), "%s:%s", fixture("full.cfg"), rest);
    assert_string_equal(errstr, expect);
}

/* A value of the wrong type names its file and line. */
static void test_get_type_errors(void **state) {
    (void)state;
    evk_config_t *cfg = load_ok("full.cfg");
    int64_t n;
    int b;
    assert_int_equal(
        evk_config_get_int(cfg, "inventory-service.max", 7, &n, errstr, sizeof(errstr)),
        EVK_ERR_CONFIG);
    assert_errstr_at("12: inventory-service.max: expected integer, got \"abc\"");
    assert_int_equal(n, 7);
    assert_int_equal(
        evk_config_get_int(cfg, "inventory-service.ratio", 0, &n, errstr, sizeof(errstr)),
        EVK_ERR_CONFIG);
    assert_errstr_at("15: inventory-service.ratio: expected integer, got 0.25");
    assert_int_equal(
        evk_config_get_bool(cfg, "inventory-service.flag", 1, &b, errstr, sizeof(errstr)),
        EVK_ERR_CONFIG);
    assert_errstr_at("17: inventory-service.flag: expected boolean, got \"maybe\"");
    assert_int_equal(
        evk_config_get_int(cfg, "inventory-service.limits", 0, &n, errstr, sizeof(errstr)),
        EVK_ERR_CONFIG);
    assert_errstr_at("20: inventory-service.limits: expected integer, got a list");
    /* Set by code or the environment: no place to name. */
    assert_int_equal(evk_config_set(cfg, "inventory-service.max", "abc"), EVK_OK);
    assert_int_equal(
        evk_config_get_int(cfg, "inventory-service.max", 7, &n, errstr, sizeof(errstr)),
        EVK_ERR_CONFIG);
    assert_string_equal(errstr, "inventory-service.max: expected integer, got \"abc\"");
    evk_config_destroy(cfg);
}

/* `blocked_customers = "c-1"` used to read as an empty list. */
static void test_get_list(void **state) {
    (void)state;
    evk_config_t *cfg = load_ok("full.cfg");
    const char **list;
    size_t n;
    assert_int_equal(evk_config_get_list(cfg, "inventory-service.warehouses", &list, &n, errstr,
                                         sizeof(errstr)),
                     EVK_OK);
    assert_int_equal(n, 2);
    assert_string_equal(list[0], "north");
    assert_string_equal(list[1], "south");
    assert_null(list[2]);
    free(list);
    assert_int_equal(
        evk_config_get_list(cfg, "inventory-service.absent", &list, &n, errstr, sizeof(errstr)),
        EVK_OK);
    assert_int_equal(n, 0);
    assert_null(list[0]);
    free(list);
    assert_int_equal(evk_config_get_list(cfg, "inventory-service.seed_file", &list, &n, errstr,
                                         sizeof(errstr)),
                     EVK_ERR_CONFIG);
    assert_null(list);
    assert_errstr_at("11: inventory-service.seed_file: expected list of strings, got "
                     "\"config/stock.cfg\"");
    assert_int_equal(
        evk_config_get_list(cfg, "inventory-service.limits", &list, &n, errstr, sizeof(errstr)),
        EVK_ERR_CONFIG);
    assert_errstr_at("20: inventory-service.limits[0]: expected string, got 1");
    assert_int_equal(
        evk_config_get_list(cfg, "inventory-service.db", &list, &n, errstr, sizeof(errstr)),
        EVK_ERR_CONFIG);
    assert_errstr_at("18: inventory-service.db: expected list of strings, got a group");
    evk_config_destroy(cfg);
}

/* evkit's own groups take their own keys only, of the right type; the top
 * level holds groups only, and a group one typo from evkit's is refused. */
static void test_unknown_keys(void **state) {
    (void)state;
    assert_text_fails("schemas = {\n  dir = \"s\";\n  dri = \"t\";\n};\n",
                      "3: schemas.dri: unknown setting; did you mean \"dir\"?");
    assert_text_fails("log = { level = \"info\"; colour = true; };\n",
                      "1: log.colour: unknown setting");
    assert_text_fails("schema_regsitry = { url = \"http://127.0.0.1:1\"; };\n",
                      "1: schema_regsitry: unknown group; did you mean \"schema_registry\"?");
    assert_text_fails("kakfa = { bootstrap_servers = \"k:9092\"; };\n",
                      "1: kakfa: unknown group; did you mean \"kafka\"?");
    assert_text_fails("schema_registry = { url = \"http://r\"; timeout = 5; };\n",
                      "1: schema_registry.timeout: unknown setting");
    assert_text_fails("version = 1;\n",
                      "1: version: unknown setting: the top level holds groups only (kafka, "
                      "schemas, schema_registry, log, metrics, state and one per service)");
    assert_text_fails("metrics = \"9100\";\n", "1: metrics: expected a group");
    assert_text_fails("metrics = {\n  port = \"http\";\n};\n",
                      "2: metrics.port: expected integer, got \"http\"");
    assert_text_fails("log = { level = 3; };\n", "1: log.level: expected string, got 3");
    assert_text_fails("schema_registry = { url = \"http://r\"; auto_register = [\"no\"]; };\n",
                      "1: schema_registry.auto_register: expected boolean, got a list");

    /* Every key of evkit's groups, and a service's group, which is its own. */
    char path[] = "/tmp/evk-cfg-XXXXXX";
    evk_config_t *cfg =
        load_text("schemas = { dir = \"s\"; };\n"
                  "log = { level = \"info\"; format = \"json\"; };\n"
                  "metrics = { port = \"9100\"; bind = \"0.0.0.0\"; };\n"
                  "schema_registry = { url = \"http://r\"; basic_auth_user_info = \"u:p\";\n"
                  "  basic_auth_user_info_file = \"/f\"; ssl_ca_location = \"/ca\";\n"
                  "  ssl_certificate_location = \"/c\"; ssl_key_location = \"/k\";\n"
                  "  ssl_key_password = \"kp\"; ssl_key_password_file = \"/kp\";\n"
                  "  subject_name_strategy = \"record\"; auto_register = false;\n"
                  "  timeout_ms = 100; };\n"
                  "blog = { anything = [1, 2]; };\n",
                  path);
    evk_config_destroy(cfg);
}

static evk_service_t *service_from(const char *text, const evk_catalog_t *cat,
                                   evk_config_t **cfg) {
    char path[] = "/tmp/evk-cfg-XXXXXX";
    evk_service_t *svc = NULL;
    *cfg = load_text(text, path);
    if (evk_service_new("pay", *cfg, cat, &svc, errstr, sizeof(errstr))) fail_msg("%s", errstr);
    return svc;
}

/* A service's group holds the loop's keys and those the service declares,
 * each of its type; evk_service_run() refuses anything else before it
 * connects anywhere. */
static void test_service_settings(void **state) {
    (void)state;
    static const evk_setting_t own[] = {{"credit_limit_cents", EVK_SETTING_INT},
                                        {"blocked_customers", EVK_SETTING_LIST},
                                        {NULL, 0}};
    char dir[512];
    evk_catalog_t *cat = NULL;
    evk_config_t *cfg;
    snprintf(dir, sizeof(dir), "%s/schemas", getenv("EVK_SOURCE_DIR"));
    if (evk_catalog_load(dir, &cat, errstr, sizeof(errstr))) fail_msg("%s", errstr);

    evk_service_t *svc = service_from(
        "pay = {\n  batch_max = 10;\n  instance_id = \"i-1\";\n  static_membership = true;\n"
        "  metrics_port_stride = 1;\n  credit_limit_cents = 5;\n"
        "  blocked_customers = [ \"c-1\" ];\n};\n",
        cat, &cfg);
    assert_int_equal(evk_service_settings(svc, NULL, errstr, sizeof(errstr)), EVK_ERR_CONFIG);
    assert_non_null(strstr(errstr, ":6: pay.credit_limit_cents: unknown setting"));
    assert_int_equal(evk_service_run(svc, errstr, sizeof(errstr)), EVK_ERR_CONFIG);
    assert_non_null(strstr(errstr, ":6: pay.credit_limit_cents: unknown setting"));
    assert_int_equal(evk_service_settings(svc, own, errstr, sizeof(errstr)), EVK_OK);
    evk_service_destroy(svc);
    evk_config_destroy(cfg);

    svc = service_from("pay = { blocked_customers = \"c-1\"; };\n", cat, &cfg);
    assert_int_equal(evk_service_settings(svc, own, errstr, sizeof(errstr)), EVK_ERR_CONFIG);
    assert_non_null(
        strstr(errstr, ":1: pay.blocked_customers: expected list of strings, got \"c-1\""));
    evk_service_destroy(svc);
    evk_config_destroy(cfg);

    svc = service_from("pay = { retry_backof_ms = 10; };\n", cat, &cfg);
    assert_int_equal(evk_service_settings(svc, own, errstr, sizeof(errstr)), EVK_ERR_CONFIG);
    assert_non_null(
        strstr(errstr,
               ":1: pay.retry_backof_ms: unknown setting; did you mean \"retry_backoff_ms\"?"));
    evk_service_destroy(svc);
    evk_config_destroy(cfg);

    svc = service_from("pay = { group_id = 7; };\n", cat, &cfg);
    assert_int_equal(evk_service_settings(svc, own, errstr, sizeof(errstr)), EVK_ERR_CONFIG);
    assert_non_null(strstr(errstr, ":1: pay.group_id: expected string, got 7"));
    evk_service_destroy(svc);
    evk_config_destroy(cfg);
    evk_catalog_destroy(cat);
}

static void test_bool_spellings(void **state) {
    (void)state;
    static const struct {
        const char *text;
        int want;
    } cases[] = {{"true", 1}, {"YES", 1}, {"1", 1}, {"false", 0}, {"no", 0}, {"0", 0}};
    evk_config_t *cfg = evk_config_new();
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int b = -1;
        assert_int_equal(evk_config_set(cfg, "svc.on", cases[i].text), EVK_OK);
        assert_int_equal(evk_config_get_bool(cfg, "svc.on", -1, &b, errstr, sizeof(errstr)),
                         EVK_OK);
        assert_int_equal(b, cases[i].want);
    }
    evk_config_destroy(cfg);
}

static void test_layering(void **state) {
    (void)state;
    evk_config_t *cfg = load_ok("full.cfg");
    setenv("EVK_BOOTSTRAP_SERVERS", "env:9092", 1);
    setenv("EVK_SCHEMAS_DIR", "/env/schemas", 1);
    setenv("EVK_KAFKA_CLIENT_ID", "from-env", 1);
    setenv("EVK_KAFKA_SOCKET_TIMEOUT_MS", "12345", 1);
    assert_int_equal(evk_config_apply_env(cfg, errstr, sizeof(errstr)), EVK_OK);
    assert_string_equal(evk_config_kafka_get(cfg, "bootstrap.servers"), "env:9092");
    assert_string_equal(evk_config_kafka_get(cfg, "client.id"), "from-env");
    assert_string_equal(evk_config_kafka_get(cfg, "socket.timeout.ms"), "12345");
    assert_string_equal(evk_config_schemas_dir(cfg), "/env/schemas");

    assert_int_equal(
        evk_config_set_kafka(cfg, "bootstrap.servers", "cli:9092", errstr, sizeof(errstr)),
        EVK_OK);
    assert_int_equal(evk_config_set_kafka_kv(cfg, "client.id=from-cli", errstr, sizeof(errstr)),
                     EVK_OK);
    assert_int_equal(evk_config_set(cfg, "schemas.dir", "/cli/schemas"), EVK_OK);
    assert_string_equal(evk_config_kafka_get(cfg, "bootstrap.servers"), "cli:9092");
    assert_string_equal(evk_config_kafka_get(cfg, "client.id"), "from-cli");
    assert_string_equal(evk_config_schemas_dir(cfg), "/cli/schemas");
    evk_config_destroy(cfg);
}

/* EVK_BOOTSTRAP_SERVERS wins over EVK_KAFKA_BOOTSTRAP_SERVERS; an empty one is unset. */
static void test_env_shortcuts(void **state) {
    (void)state;
    evk_config_t *cfg = evk_config_new();
    setenv("EVK_KAFKA_BOOTSTRAP_SERVERS", "generic:9092", 1);
    setenv("EVK_BOOTSTRAP_SERVERS", "named:9092", 1);
    assert_int_equal(evk_config_apply_env(cfg, errstr, sizeof(errstr)), EVK_OK);
    assert_string_equal(evk_config_kafka_get(cfg, "bootstrap.servers"), "named:9092");
    evk_config_destroy(cfg);

    clear_evk_env();
    cfg = evk_config_new();
    setenv("EVK_BOOTSTRAP_SERVERS", "", 1);
    setenv("EVK_STATE_DIR", "/var/lib/evkit", 1);
    assert_int_equal(evk_config_apply_env(cfg, errstr, sizeof(errstr)), EVK_OK);
    assert_null(evk_config_kafka_get(cfg, "bootstrap.servers"));
    assert_string_equal(evk_config_get_string(cfg, "state.dir", NULL), "/var/lib/evkit");
    evk_config_destroy(cfg);
}

static void test_env_unknown_property(void **state) {
    (void)state;
    evk_config_t *cfg = evk_config_new();
    setenv("EVK_KAFKA_SOCKET_TIMOUT_MS", "5", 1);
    assert_int_equal(evk_config_apply_env(cfg, errstr, sizeof(errstr)), EVK_ERR_CONFIG);
    assert_string_equal(errstr, "EVK_KAFKA_SOCKET_TIMOUT_MS: kafka.socket.timout.ms: No such "
                                "configuration property: \"socket.timout.ms\"");
    evk_config_destroy(cfg);
}

static void test_open(void **state) {
    (void)state;
    evk_config_t *cfg = NULL;
    setenv("EVK_CONFIG", fixture("full.cfg"), 1);
    setenv("EVK_BOOTSTRAP_SERVERS", "env:9092", 1);
    assert_int_equal(evk_config_open(NULL, &cfg, errstr, sizeof(errstr)), EVK_OK);
    assert_string_equal(evk_config_kafka_get(cfg, "client.id"), "evkit-test");
    assert_string_equal(evk_config_kafka_get(cfg, "bootstrap.servers"), "env:9092");
    evk_config_destroy(cfg);

    /* An explicit path wins over $EVK_CONFIG. */
    assert_int_equal(evk_config_open(fixture("acks.cfg"), &cfg, errstr, sizeof(errstr)),
                     EVK_ERR_CONFIG);
    assert_null(cfg);

    unsetenv("EVK_CONFIG");
    assert_int_equal(evk_config_open(NULL, &cfg, errstr, sizeof(errstr)), EVK_OK);
    assert_null(evk_config_kafka_get(cfg, "client.id"));
    assert_string_equal(evk_config_kafka_get(cfg, "bootstrap.servers"), "env:9092");
    evk_config_destroy(cfg);
}

static void test_missing_file(void **state) {
    (void)state;
    evk_config_t *cfg = NULL;
    char expect[2048];
    snprintf(expect, sizeof(expect), "%s: No such file or directory", fixture("absent.cfg"));
    assert_int_equal(evk_config_open(fixture("absent.cfg"), &cfg, errstr, sizeof(errstr)),
                     EVK_ERR_IO);
    assert_string_equal(errstr, expect);
    assert_null(cfg);
}

static void test_file_errors(void **state) {
    (void)state;
    assert_load_fails("syntax.cfg", EVK_ERR_CONFIG, "3: syntax error");
    assert_load_fails("unknown.cfg", EVK_ERR_CONFIG,
                      "3: kafka.socket.timout.ms: No such configuration property: "
                      "\"socket.timout.ms\"");
    assert_load_fails("badvalue.cfg", EVK_ERR_CONFIG,
                      "2: kafka.security.protocol: Invalid value \"bogus\" for configuration "
                      "property \"security.protocol\"");
    assert_load_fails("nested.cfg", EVK_ERR_CONFIG,
                      "3: kafka.ssl: expected a value, not a group");
    assert_load_fails("notgroup.cfg", EVK_ERR_CONFIG, "1: kafka: expected a group");
    assert_load_fails("acks.cfg", EVK_ERR_CONFIG,
                      "2: kafka.acks: evkit requires acks=all (idempotent producer)");
    assert_load_fails("idempotence.cfg", EVK_ERR_CONFIG,
                      "2: kafka.enable.idempotence: evkit requires enable.idempotence=true "
                      "(idempotent producer)");
}

/* unknown.cfg sets bootstrap_servers before its bad line: none of it may stick. */
static void test_failed_load_changes_nothing(void **state) {
    (void)state;
    evk_config_t *cfg = evk_config_new();
    assert_int_equal(evk_config_load(cfg, fixture("unknown.cfg"), errstr, sizeof(errstr)),
                     EVK_ERR_CONFIG);
    assert_null(evk_config_kafka_get(cfg, "bootstrap.servers"));
    evk_config_destroy(cfg);
}

static void test_acks_policy(void **state) {
    (void)state;
    evk_config_t *cfg = evk_config_new();
    assert_int_equal(evk_config_set_kafka(cfg, "acks", "1", errstr, sizeof(errstr)),
                     EVK_ERR_CONFIG);
    assert_string_equal(errstr, "kafka.acks: evkit requires acks=all (idempotent producer)");
    assert_int_equal(
        evk_config_set_kafka_kv(cfg, "request.required.acks=0", errstr, sizeof(errstr)),
        EVK_ERR_CONFIG);
    assert_string_equal(errstr, "kafka.request.required.acks: evkit requires acks=all "
                                "(idempotent producer)");
    assert_int_equal(
        evk_config_set_kafka(cfg, "enable.idempotence", "0", errstr, sizeof(errstr)),
        EVK_ERR_CONFIG);
    assert_string_equal(errstr, "kafka.enable.idempotence: evkit requires "
                                "enable.idempotence=true (idempotent producer)");
    assert_string_equal(evk_config_kafka_get(cfg, "acks"), "all");

    assert_int_equal(evk_config_set_kafka(cfg, "acks", "-1", errstr, sizeof(errstr)), EVK_OK);
    assert_int_equal(evk_config_set_kafka(cfg, "acks", "all", errstr, sizeof(errstr)), EVK_OK);

    setenv("EVK_KAFKA_ACKS", "1", 1);
    assert_int_equal(evk_config_apply_env(cfg, errstr, sizeof(errstr)), EVK_ERR_CONFIG);
    assert_string_equal(errstr, "EVK_KAFKA_ACKS: kafka.acks: evkit requires acks=all "
                                "(idempotent producer)");
    evk_config_destroy(cfg);
}

static void test_set_kafka_errors(void **state) {
    (void)state;
    evk_config_t *cfg = evk_config_new();
    assert_int_equal(
        evk_config_set_kafka(cfg, "socket.timeout.ms", "abc", errstr, sizeof(errstr)),
        EVK_ERR_CONFIG);
    assert_string_equal(errstr, "kafka.socket.timeout.ms: Invalid value for configuration "
                                "property \"socket.timeout.ms\"");
    /* A property's name without a value is shown... */
    assert_int_equal(evk_config_set_kafka_kv(cfg, "socket.timeout.ms", errstr, sizeof(errstr)),
                     EVK_ERR_CONFIG);
    assert_string_equal(errstr, "socket.timeout.ms: expected name=value");
    assert_null(evk_config_kafka_get(cfg, "socket.timeout.ms"));
    /* librdkafka properties cannot be smuggled in unchecked. */
    assert_int_equal(evk_config_set(cfg, "kafka.acks", "0"), EVK_ERR_INVALID_ARG);
    evk_config_destroy(cfg);
}

static void test_secrets_never_printed(void **state) {
    (void)state;
    evk_config_t *cfg = load_ok("full.cfg");
    int64_t n;
    int b;
    assert_string_equal(evk_config_kafka_get(cfg, "sasl.password"), "hunter2");
    assert_int_equal(
        evk_config_get_int(cfg, "inventory-service.db.password", 0, &n, errstr, sizeof(errstr)),
        EVK_ERR_CONFIG);
    assert_errstr_at("18: inventory-service.db.password: expected integer, got \"<redacted>\"");
    /* ...anything else without '=' may be a value given alone (-X hunter2). */
    static const char *const alone[] = {"sasl.password:hunter2", "hunter2", "p@ss/w0rd"};
    for (size_t i = 0; i < sizeof(alone) / sizeof(alone[0]); i++) {
        assert_int_equal(evk_config_set_kafka_kv(cfg, alone[i], errstr, sizeof(errstr)),
                         EVK_ERR_CONFIG);
        assert_string_equal(errstr, "expected name=value, got an argument without '=' (not "
                                    "shown: it may be a secret)");
    }
    assert_int_equal(evk_config_set(cfg, "svc.api_secret", "xyz"), EVK_OK);
    assert_int_equal(evk_config_get_bool(cfg, "svc.api_secret", 0, &b, errstr, sizeof(errstr)),
                     EVK_ERR_CONFIG);
    assert_null(strstr(errstr, "xyz"));
    evk_config_destroy(cfg);
}

/* Secrets out of the config file and out of ps: the environment, or a
 * "<property>_file" (a file, env or -X), read less its trailing newline. */
static void test_secret_sources(void **state) {
    (void)state;
    char secret[] = "/tmp/evk-secret-XXXXXX", path[] = "/tmp/evk-cfg-XXXXXX", text[256];
    char user[] = "/tmp/evk-secret-XXXXXX", expect[512];
    write_file(secret, "s3/cr@t\n");
    write_file(user, "evkit:pw\r\n");
    snprintf(text, sizeof(text), "kafka = {\n  sasl_password_file = \"%s\";\n};\n", secret);
    evk_config_t *cfg = load_text(text, path);
    assert_string_equal(evk_config_kafka_get(cfg, "sasl.password"), "s3/cr@t");
    assert_null(evk_config_kafka_get(cfg, "sasl.password.file"));
    evk_config_destroy(cfg);

    cfg = evk_config_new();
    snprintf(text, sizeof(text), "ssl.key.password.file=%s", secret);
    assert_int_equal(evk_config_set_kafka_kv(cfg, text, errstr, sizeof(errstr)), EVK_OK);
    assert_string_equal(evk_config_kafka_get(cfg, "ssl.key.password"), "s3/cr@t");
    setenv("EVK_KAFKA_SASL_PASSWORD", "from-env", 1);
    setenv("EVK_SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO", "u:from-env", 1);
    assert_int_equal(evk_config_apply_env(cfg, errstr, sizeof(errstr)), EVK_OK);
    assert_string_equal(evk_config_kafka_get(cfg, "sasl.password"), "from-env");
    assert_string_equal(
        evk_config_get_string(cfg, "schema_registry.basic.auth.user.info", NULL), "u:from-env");
    clear_evk_env();
    setenv("EVK_KAFKA_SASL_PASSWORD_FILE", user, 1);
    assert_int_equal(evk_config_apply_env(cfg, errstr, sizeof(errstr)), EVK_OK);
    assert_string_equal(evk_config_kafka_get(cfg, "sasl.password"), "evkit:pw");
    evk_config_destroy(cfg);
    unlink(secret);
    unlink(user);

    snprintf(text, sizeof(text), "kafka = {\n  sasl_password_file = \"%s\";\n};\n", secret);
    snprintf(expect, sizeof(expect),
             "2: kafka.sasl.password.file: %s: No such file or directory", secret);
    assert_text_fails(text, expect);
}

static void test_kafka_conf(void **state) {
    (void)state;
    char val[256];
    size_t size = sizeof(val);
    evk_config_t *cfg = load_ok("full.cfg");
    rd_kafka_conf_t *conf = evk_config_kafka_conf(cfg, errstr, sizeof(errstr));
    assert_non_null(conf);
    assert_int_equal(rd_kafka_conf_get(conf, "bootstrap.servers", val, &size),
                     RD_KAFKA_CONF_OK);
    assert_string_equal(val, "file1:9092,file2:9092");
    size = sizeof(val);
    assert_int_equal(rd_kafka_conf_get(conf, "enable.idempotence", val, &size),
                     RD_KAFKA_CONF_OK);
    assert_string_equal(val, "true");
    size = sizeof(val);
    assert_int_equal(rd_kafka_conf_get(conf, "acks", val, &size), RD_KAFKA_CONF_OK);
    assert_string_equal(val, "-1");
    rd_kafka_conf_destroy(conf);
    evk_config_destroy(cfg);
}

static const char *conf_value(const evk_config_t *cfg, const char *name, char *val,
                              size_t size) {
    rd_kafka_conf_t *conf = evk_config_kafka_conf(cfg, errstr, sizeof(errstr));
    assert_non_null(conf);
    assert_int_equal(rd_kafka_conf_get(conf, name, val, &size), RD_KAFKA_CONF_OK);
    rd_kafka_conf_destroy(conf);
    return val;
}

/* evkit's one default of its own, and what overrides it. */
static void test_kafka_conf_reconnect_backoff(void **state) {
    (void)state;
    char val[64];
    const char *max = "reconnect.backoff.max.ms";
    evk_config_t *cfg = evk_config_new();
    assert_string_equal(conf_value(cfg, max, val, sizeof(val)), "1000");
    assert_int_equal(evk_config_set_kafka(cfg, max, "4000", errstr, sizeof(errstr)), EVK_OK);
    assert_string_equal(conf_value(cfg, max, val, sizeof(val)), "4000");
    evk_config_destroy(cfg);
    /* An initial backoff above 1 s keeps librdkafka's maximum. */
    cfg = evk_config_new();
    assert_int_equal(
        evk_config_set_kafka(cfg, "reconnect.backoff.ms", "2000", errstr, sizeof(errstr)),
        EVK_OK);
    assert_string_equal(conf_value(cfg, max, val, sizeof(val)), "10000");
    evk_config_destroy(cfg);
}

/* The shipped example must load as it is. */
static void test_example_config(void **state) {
    (void)state;
    char path[1024];
    evk_config_t *cfg = evk_config_new();
    snprintf(path, sizeof(path), "%s/config/evkit.cfg", getenv("EVK_SOURCE_DIR"));
    assert_int_equal(evk_config_load(cfg, path, errstr, sizeof(errstr)), EVK_OK);
    assert_string_equal(evk_config_schemas_dir(cfg), "schemas");
    assert_null(evk_config_kafka_get(cfg, "bootstrap.servers"));
    evk_config_destroy(cfg);
}

/* evk_cli_number(): whole numbers within the range, nothing else. */
static void test_cli_number(void **state) {
    (void)state;
    long long v;
    assert_int_equal(evk_cli_number("7", 0, 10, &v), 0);
    assert_int_equal(v, 7);
    assert_int_equal(evk_cli_number("0", 0, 10, &v), 0);
    assert_int_equal(evk_cli_number("-3", -5, 10, &v), 0);
    assert_int_equal(v, -3);
    assert_int_equal(evk_cli_number("-1", 0, 10, &v), -1);
    assert_int_equal(evk_cli_number("11", 0, 10, &v), -1);
    assert_int_equal(evk_cli_number("", 0, 10, &v), -1);
    assert_int_equal(evk_cli_number("2x", 0, 10, &v), -1);
    assert_int_equal(evk_cli_number("x", 0, 10, &v), -1);
    assert_int_equal(evk_cli_number("99999999999999999999", 0, LLONG_MAX, &v), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_names),
        cmocka_unit_test(test_kafka_conf_reconnect_backoff),
        cmocka_unit_test_setup(test_defaults, reset_env),
        cmocka_unit_test_setup(test_load_values, reset_env),
        cmocka_unit_test_setup(test_get_type_errors, reset_env),
        cmocka_unit_test_setup(test_get_list, reset_env),
        cmocka_unit_test_setup(test_unknown_keys, reset_env),
        cmocka_unit_test_setup(test_service_settings, reset_env),
        cmocka_unit_test_setup(test_secret_sources, reset_env),
        cmocka_unit_test_setup(test_bool_spellings, reset_env),
        cmocka_unit_test_setup(test_layering, reset_env),
        cmocka_unit_test_setup(test_env_shortcuts, reset_env),
        cmocka_unit_test_setup(test_env_unknown_property, reset_env),
        cmocka_unit_test_setup(test_open, reset_env),
        cmocka_unit_test_setup(test_missing_file, reset_env),
        cmocka_unit_test_setup(test_file_errors, reset_env),
        cmocka_unit_test_setup(test_failed_load_changes_nothing, reset_env),
        cmocka_unit_test_setup(test_acks_policy, reset_env),
        cmocka_unit_test_setup(test_set_kafka_errors, reset_env),
        cmocka_unit_test_setup(test_secrets_never_printed, reset_env),
        cmocka_unit_test_setup(test_kafka_conf, reset_env),
        cmocka_unit_test_setup(test_example_config, reset_env),
        cmocka_unit_test(test_cli_number),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
