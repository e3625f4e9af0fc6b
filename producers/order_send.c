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
    if (evk_producer_connect(s->producer, EVK_CLI_CONNECT_TIMEOUT_MS, errstr, sizeof errstr)) {
        fprintf(stderr, PROG ": %s\n", errstr);
        evk_producer_destroy(s->producer);
        s->producer = NULL;
        return EVK_EXIT_DELIVERY;
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

int order_sender_close(order_sender_t *s) {
    char errstr[1024];
    evk_err_t err = evk_producer_flush(s->producer, -1, errstr, sizeof errstr);
    if (err) fprintf(stderr, PROG ": %s\n", errstr);
    fflush(stdout);
    evk_producer_destroy(s->producer);
    s->producer = NULL;
    return err ? EVK_EXIT_DELIVERY : EVK_EXIT_OK;
}
