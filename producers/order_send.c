/* Sending orders: an idempotent producer whose delivery reports print each
 * order's id once Kafka has it, so a printed id is a durable order. */
#include <stdlib.h>
#include <string.h>

#include "order.h"

static void on_delivery(evk_err_t err, const char *errstr, const char *topic, int32_t partition,
                        int64_t offset, void *msg_opaque, void *opaque) {
    order_sender_t *s = opaque;
    char *order_id = msg_opaque;
    (void)topic, (void)partition, (void)offset;
    if (err) {
        fprintf(stderr, PROG ": order %s not delivered: %s\n", order_id, errstr);
    } else {
        s->delivered++;
        if (s->print_ids) printf("%s\n", order_id);
    }
    free(order_id);
}

int order_sender_open(order_sender_t *s, const order_env_t *env, int print_ids) {
    char errstr[512];
    *s = (order_sender_t){.print_ids = print_ids};
    if (evk_producer_new(env->cfg, env->cat, PROG, &s->producer, errstr, sizeof errstr)) {
        fprintf(stderr, PROG ": %s\n", errstr);
        return EVK_EXIT_CONFIG;
    }
    evk_producer_set_delivery_cb(s->producer, on_delivery, s);
    return EVK_EXIT_OK;
}

int order_send(order_sender_t *s, evk_event_t *order) {
    char errstr[512];
    const char *id = NULL;
    evk_event_get_string(order, "order_id", &id);
    char *opaque = id ? strdup(id) : NULL;
    /* The order id correlates every event the order causes downstream. */
    if (!opaque || evk_event_set_key(order, id) || evk_event_set_correlation_id(order, id)) {
        fprintf(stderr, PROG ": out of memory\n");
        free(opaque);
        evk_event_destroy(order);
        return -1;
    }
    if (evk_producer_send(s->producer, order, opaque, errstr, sizeof errstr)) {
        fprintf(stderr, PROG ": %s\n", errstr);
        free(opaque);
        return -1;
    }
    s->sent++;
    return 0;
}

int order_send_frame(order_sender_t *s, const order_env_t *env, order_msg_t *m) {
    char errstr[512];
    /* The id is both the key (copied by librdkafka) and, for on_delivery(),
     * the message's opaque, which frees it. */
    char *id = m->order_id;
    if (evk_producer_send_frame(s->producer, env->placed, id, strlen(id), m->frame, m->len,
                                m->headers, id, errstr, sizeof errstr)) {
        fprintf(stderr, PROG ": %s\n", errstr);
        free(id);
        return -1;
    }
    s->sent++;
    return 0;
}

void order_msg_free(order_msg_t *m) {
    free(m->frame);
    free(m->order_id);
    if (m->headers) rd_kafka_headers_destroy(m->headers);
}

/* Long enough for librdkafka to deliver or fail every queued message. */
static int flush_timeout_ms(evk_producer_t *p) {
    char buf[32];
    size_t size = sizeof buf;
    if (rd_kafka_conf_get(rd_kafka_conf(evk_producer_rk(p)), "message.timeout.ms", buf,
                          &size) != RD_KAFKA_CONF_OK)
        return 300000 + 10000;
    return atoi(buf) + 10000;
}

int order_sender_close(order_sender_t *s) {
    char errstr[1024];
    evk_err_t err =
        evk_producer_flush(s->producer, flush_timeout_ms(s->producer), errstr, sizeof errstr);
    if (err) fprintf(stderr, PROG ": %s\n", errstr);
    fflush(stdout);
    evk_producer_destroy(s->producer);
    s->producer = NULL;
    return err ? EVK_EXIT_DELIVERY : EVK_EXIT_OK;
}
