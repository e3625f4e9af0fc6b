/* The log: logfmt and JSON, levels (config, environment, -q/-v), secret
 * redaction in fields and URLs. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "evkit/cli.h"
#include "evkit/log.h"
#include "internal.h"

/* Captures what evk_log writes to stderr (fd 2) into a temporary file. */
static char *capture(void (*fn)(void)) {
    char path[] = "/tmp/evk-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    fn();
    dup2(saved, STDERR_FILENO);
    close(saved);
    static char out[8192];
    ssize_t n = pread(fd, out, sizeof out - 1, 0);
    assert_true(n >= 0);
    out[n] = 0;
    close(fd);
    unlink(path);
    return out;
}

static void log_reserved(void) {
    evk_log(EVK_LOG_INFO, "inventory-service", "reserved", "order_id", "o-1", "reason",
            "two words", "sasl.password", "hunter2", NULL);
}

static void log_debug(void) {
    evk_log(EVK_LOG_DEBUG, "svc", "hidden", NULL);
}

static void test_logfmt(void **state) {
    (void)state;
    unsetenv("EVK_LOG_FORMAT");
    unsetenv("EVK_LOG_LEVEL");
    assert_int_equal(evk_log_setup(NULL, NULL, 0), EVK_OK);
    const char *out = capture(log_reserved);
    assert_non_null(strstr(out, " level=info component=inventory-service msg=reserved "
                                "order_id=o-1 reason=\"two words\" "
                                "sasl.password=<redacted>\n"));
    assert_int_equal(strncmp(out, "time=", 5), 0);
    assert_string_equal(capture(log_debug), "");
}

static void test_json_and_level_from_env(void **state) {
    (void)state;
    setenv("EVK_LOG_FORMAT", "json", 1);
    setenv("EVK_LOG_LEVEL", "debug", 1);
    assert_int_equal(evk_log_setup(NULL, NULL, 0), EVK_OK);
    const char *out = capture(log_debug);
    assert_non_null(
        strstr(out, ",\"level\":\"debug\",\"component\":\"svc\",\"msg\":\"hidden\"}\n"));
    assert_int_equal(strncmp(out, "{\"time\":\"", 9), 0);
    assert_true(evk_log_enabled(EVK_LOG_DEBUG));
}

static void log_url(void) {
    evk_log(EVK_LOG_WARN, "svc", "webhook failed", "error",
            "POST https://bob:pa/ss@w0rd#1@hooks.example.com/x?a=b: HTTP 500", NULL);
}

/* Whole names and suffixes, not substrings: "author" stays readable. */
static void test_secret_names(void **state) {
    (void)state;
    static const char *const secret[] = {"password",
                                         "sasl.password",
                                         "ssl.key.password",
                                         "inventory-service.db.password",
                                         "db_password",
                                         "secret",
                                         "client_secret",
                                         "sasl.oauthbearer.client.secret",
                                         "sasl.jaas.config",
                                         "sasl.username",
                                         "token",
                                         "api_token",
                                         "refresh-token",
                                         "authorization",
                                         "ssl.key.pem",
                                         "schema_registry.basic.auth.user.info",
                                         "credentials"};
    static const char *const plain[] = {"author",      "authorization_id", "order_id",
                                        "tokens_used", "secretary",        "passwords_changed",
                                        "keyspace",    "ssl.key.location", "sasl",
                                        "reason"};
    for (size_t i = 0; i < sizeof(secret) / sizeof(secret[0]); i++)
        if (!evk__secret_name(secret[i])) fail_msg("%s should be a secret", secret[i]);
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++)
        if (evk__secret_name(plain[i])) fail_msg("%s should not be a secret", plain[i]);
}

/* A password may hold '/', '@' or '#' unescaped: all of it is redacted. */
static void test_url_password_redacted(void **state) {
    (void)state;
    setenv("EVK_LOG_FORMAT", "logfmt", 1);
    setenv("EVK_LOG_LEVEL", "info", 1);
    assert_int_equal(evk_log_setup(NULL, NULL, 0), EVK_OK);
    const char *out = capture(log_url);
    assert_non_null(strstr(out, " error=\"POST https://<redacted>@hooks.example.com/x?a=b: "
                                "HTTP 500\"\n"));
    assert_null(strstr(out, "ss@"));
    assert_null(strstr(out, "w0rd"));
}

/* -v/-q as a program gets them (evk_cli_opt(), evk_cli_opts_config()): a
 * step from the level the config and environment give, kept across a
 * later evk_log_setup() and within debug..error. */
static int level_after(const char *env_level, const char *opts) {
    evk_cli_opts_t o;
    evk_config_t *cfg = NULL;
    char err[256];
    unsetenv("EVK_LOG_FORMAT");
    if (env_level)
        setenv("EVK_LOG_LEVEL", env_level, 1);
    else
        unsetenv("EVK_LOG_LEVEL");
    assert_int_equal(evk_cli_opts_init(&o, 4), EVK_OK);
    o.brokers = "127.0.0.1:1";
    for (const char *c = opts; *c; c++)
        assert_int_equal(evk_cli_opt(&o, *c, NULL, "test", NULL), EVK_CLI_TAKEN);
    assert_int_equal(evk_cli_opts_config(&o, &cfg, err, sizeof err), EVK_OK);
    assert_int_equal(evk_log_setup(cfg, err, sizeof err), EVK_OK); /* a program's own call */
    evk_config_destroy(cfg);
    evk_cli_opts_clear(&o);
    for (int l = EVK_LOG_DEBUG; l <= EVK_LOG_ERROR; l++)
        if (evk_log_enabled((evk_log_level_t)l)) return l;
    return -1;
}

static void test_verbosity(void **state) {
    (void)state;
    assert_int_equal(level_after(NULL, ""), EVK_LOG_INFO);
    assert_int_equal(level_after(NULL, "v"), EVK_LOG_DEBUG);
    assert_int_equal(level_after(NULL, "vvv"), EVK_LOG_DEBUG);
    assert_int_equal(level_after(NULL, "q"), EVK_LOG_WARN);
    assert_int_equal(level_after(NULL, "qq"), EVK_LOG_ERROR);
    assert_int_equal(level_after(NULL, "qqqq"), EVK_LOG_ERROR);
    assert_int_equal(level_after("warn", "v"), EVK_LOG_INFO);
    assert_int_equal(level_after("debug", "q"), EVK_LOG_INFO);
    assert_int_equal(level_after("error", "vq"), EVK_LOG_ERROR);
    unsetenv("EVK_LOG_LEVEL");
}

static void test_bad_level(void **state) {
    (void)state;
    char err[256];
    setenv("EVK_LOG_LEVEL", "loud", 1);
    assert_int_equal(evk_log_setup(NULL, err, sizeof err), EVK_ERR_CONFIG);
    assert_string_equal(err,
                        "EVK_LOG_LEVEL: unknown log level \"loud\" (debug, info, warn, error)");
    setenv("EVK_LOG_LEVEL", "info", 1);
    setenv("EVK_LOG_FORMAT", "xml", 1);
    assert_int_equal(evk_log_setup(NULL, err, sizeof err), EVK_ERR_CONFIG);
    assert_string_equal(err, "EVK_LOG_FORMAT: unknown log format \"xml\" (logfmt, json)");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_logfmt),
        cmocka_unit_test(test_json_and_level_from_env),
        cmocka_unit_test(test_url_password_redacted),
        cmocka_unit_test(test_secret_names),
        cmocka_unit_test(test_bad_level),
        cmocka_unit_test(test_verbosity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
