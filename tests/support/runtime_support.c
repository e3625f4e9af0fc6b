/* The runtime tests' fixtures: a dev broker, config, catalog and a plain
 * reader (runtime_support.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "internal.h"
#include "runtime_support.h"

rt_env_t *rt_env_new(int brokers) {
    char errstr[512];
    rt_env_t *env = calloc(1, sizeof(*env));
    assert_non_null(env);
    assert_int_equal(evk_devbroker_new(brokers, &env->db, errstr, sizeof(errstr)), EVK_OK);
    env->cfg = evk_config_new();
    assert_non_null(env->cfg);
    assert_int_equal(evk_config_set_kafka(env->cfg, "bootstrap.servers",
                                          evk_devbroker_bootstraps(env->db), errstr,
                                          sizeof(errstr)),
                     EVK_OK);
    const char *dir = getenv("EVK_SCHEMAS_DIR");
    assert_non_null(dir);
    if (evk_catalog_load(dir, &env->cat, errstr, sizeof(errstr)))
        fail_msg("catalog: %s", errstr);
    return env;
}

void rt_env_destroy(rt_env_t *env) {
    if (!env) return;
    evk_catalog_destroy(env->cat);
    evk_config_destroy(env->cfg);
    evk_devbroker_destroy(env->db);
    free(env);
}

evk_producer_t *rt_producer(rt_env_t *env) {
    char errstr[512];
    evk_producer_t *p;
    if (evk_producer_new(env->cfg, env->cat, "test", &p, errstr, sizeof(errstr)))
        fail_msg("producer: %s", errstr);
    return p;
}

evk_event_t *rt_order(rt_env_t *env, const char *order_id) {
    char json[512], errstr[512];
    snprintf(json, sizeof(json),
             "{\"order_id\":\"%s\",\"customer_id\":\"c-42\",\"items\":["
             "{\"sku\":\"sku-1\",\"quantity\":2,\"unit_price_cents\":1250},"
             "{\"sku\":\"sku-2\",\"quantity\":1,\"unit_price_cents\":999}],"
             "\"currency\":\"EUR\",\"created_at\":1700000000000}",
             order_id);
    evk_event_t *ev;
    if (evk_event_from_json(evk_catalog_find(env->cat, "OrderPlaced"), json, strlen(json), &ev,
                            errstr, sizeof(errstr)))
        fail_msg("order: %s", errstr);
    return ev;
}

static rd_kafka_t *plain_consumer(rt_env_t *env) {
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* librdkafka 2.0 wants a group for assign() too; nothing is committed. */
    assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers",
                                       evk_devbroker_bootstraps(env->db), errstr,
                                       sizeof(errstr)),
                     RD_KAFKA_CONF_OK);
    assert_int_equal(rd_kafka_conf_set(conf, "group.id", "rt-reader", errstr, sizeof(errstr)),
                     RD_KAFKA_CONF_OK);
    assert_int_equal(
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr)),
        RD_KAFKA_CONF_OK);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    assert_non_null(rk);
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

/* The topic may not exist until the first message arrives. */
static int partition_count(rd_kafka_t *rk, const char *topic, int64_t deadline) {
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    int cnt = 0;
    while (!cnt && evk__now_ms() < deadline) {
        const struct rd_kafka_metadata *md;
        if (!rd_kafka_metadata(rk, 0, rkt, &md, 1000)) {
            if (md->topic_cnt == 1 && !md->topics[0].err) cnt = md->topics[0].partition_cnt;
            rd_kafka_metadata_destroy(md);
        }
    }
    rd_kafka_topic_destroy(rkt);
    return cnt;
}

size_t rt_consume(rt_env_t *env, const char *topic, size_t n, int timeout_ms, rt_msg_fn *fn,
                  void *opaque) {
    int64_t deadline = evk__now_ms() + timeout_ms;
    rd_kafka_t *rk = plain_consumer(env);
    int parts = partition_count(rk, topic, deadline);
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(parts);
    for (int i = 0; i < parts; i++)
        rd_kafka_topic_partition_list_add(list, topic, i)->offset = RD_KAFKA_OFFSET_BEGINNING;
    assert_int_equal(rd_kafka_assign(rk, list), 0);
    rd_kafka_topic_partition_list_destroy(list);
    size_t got = 0;
    while (got < n && evk__now_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (m && !m->err) {
            fn(m, opaque);
            got++;
        }
        if (m) rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return got;
}

char *rt_header(const rd_kafka_message_t *m, const char *name) {
    rd_kafka_headers_t *hdrs;
    const void *value;
    size_t size;
    if (rd_kafka_message_headers(m, &hdrs) ||
        rd_kafka_header_get_last(hdrs, name, &value, &size))
        return NULL;
    char *copy = malloc(size + 1);
    memcpy(copy, value, size);
    copy[size] = '\0';
    return copy;
}

int rt_free_port(void) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}
