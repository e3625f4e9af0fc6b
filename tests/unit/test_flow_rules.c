/* Unit tests of the reference flow's decision rules (consumers/flow_rules.c):
 * the reservation, payment and status-fold rules docs/FLOW.md promises. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "flow_rules.h"

/* ---- derived ids ---- */

static void test_fnv1a_reference_values(void **state) {
    (void)state;
    /* Published FNV-1a 64 test vectors: the ids must not change across builds. */
    assert_true(flow_fnv1a64("") == 0xcbf29ce484222325ULL);
    assert_true(flow_fnv1a64("a") == 0xaf63dc4c8601ec8cULL);
    assert_true(flow_fnv1a64("foobar") == 0x85944171f73967e8ULL);
}

static void test_hash_id_is_deterministic(void **state) {
    char a[32], b[32], c[32];
    (void)state;
    flow_hash_id("auth-", "o-1", a, sizeof a);
    flow_hash_id("auth-", "o-1", b, sizeof b);
    flow_hash_id("auth-", "o-2", c, sizeof c);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    assert_int_equal(strlen(a), 5 + 16);
    assert_memory_equal(a, "auth-", 5);
}

static void test_tracking_number(void **state) {
    char a[32], b[32], c[32];
    (void)state;
    flow_tracking_number("DHL", "o-1", a, sizeof a);
    flow_tracking_number("DHL", "o-1", b, sizeof b);
    flow_tracking_number("ups", "o-1", c, sizeof c);
    assert_string_equal(a, b);
    assert_int_equal(strlen(a), 2 + 12);
    assert_memory_equal(a, "DH", 2);
    assert_memory_equal(c, "UP", 2);
    assert_string_equal(a + 2, c + 2); /* the digits depend on the order only */
}

static void test_pick_is_stable_and_in_range(void **state) {
    (void)state;
    char id[16];
    size_t seen[3] = {0};
    for (int i = 0; i < 300; i++) {
        snprintf(id, sizeof id, "o-%d", i);
        size_t k = flow_pick(id, 3);
        assert_true(k < 3);
        assert_int_equal(k, flow_pick(id, 3));
        seen[k]++;
    }
    /* Every carrier gets a share of the orders. */
    assert_true(seen[0] > 50 && seen[1] > 50 && seen[2] > 50);
}

/* ---- inventory ---- */

static void test_merge_lines_sums_repeated_skus(void **state) {
    (void)state;
    flow_line_t l[] = {{"SKU-1", 2, 0}, {"SKU-3", 1, 0}, {"SKU-1", 3, 0}, {"SKU-3", 1, 0}};
    size_t n = flow_merge_lines(l, 4);
    assert_int_equal(n, 2);
    assert_string_equal(l[0].sku, "SKU-1");
    assert_int_equal(l[0].quantity, 5);
    assert_string_equal(l[1].sku, "SKU-3");
    assert_int_equal(l[1].quantity, 2);
}

static void test_hold_decides_per_line(void **state) {
    (void)state;
    char reason[128] = "";
    assert_int_equal(flow_can_hold("SKU-1", 10, 10, reason, sizeof reason), 1);
    assert_int_equal(flow_can_hold("SKU-3", 1, 2, reason, sizeof reason), 0);
    assert_string_equal(reason, "insufficient stock for SKU-3: requested 2, available 1");
    assert_int_equal(flow_can_hold("SKU-9", -1, 1, reason, sizeof reason), 0);
    assert_string_equal(reason, "unknown sku SKU-9");
}

static void assert_order_rejected(const flow_order_t *o, const char *want) {
    char reason[160] = "";
    int64_t total = 0;
    assert_int_equal(flow_check_order(o, &total, reason, sizeof reason), 0);
    assert_string_equal(reason, want);
}

static void test_order_rules(void **state) {
    (void)state;
    flow_line_t ok[] = {{"SKU-1", 2, 1999}, {"SKU-2", 1, 0}};
    flow_order_t o = {"o-1", "c-1", "EUR", ok, 2};
    char reason[160];
    int64_t total = 0;
    assert_int_equal(flow_check_order(&o, &total, reason, sizeof reason), 1);
    assert_int_equal(total, 3998);
    /* A negative line must not offset another of the same SKU. */
    flow_line_t neg[] = {{"SKU-1", 2, 100}, {"SKU-1", -1, 100}};
    o.lines = neg;
    assert_order_rejected(&o, "items[1].quantity: must be at least 1, got -1");
    flow_line_t price[] = {{"SKU-1", 1, -150000}};
    o.lines = price;
    o.n = 1;
    assert_order_rejected(&o, "items[0].unit_price_cents: must not be negative, got -150000");
    flow_line_t big[] = {{"SKU-1", 2, INT64_MAX}};
    o.lines = big;
    assert_order_rejected(&o, "items[0]: order total out of range");
    flow_line_t nosku[] = {{"", 1, 1}};
    o.lines = nosku;
    assert_order_rejected(&o, "items[0].sku: must not be empty");
    o.lines = ok;
    o.n = 0;
    assert_order_rejected(&o, "items: order has no items");
    o.n = 2;
    o.currency = "euro";
    assert_order_rejected(
        &o, "currency: must be an ISO 4217 code: three upper-case letters, e.g. EUR");
    o.currency = "EUR";
    o.customer_id = "";
    assert_order_rejected(&o, "customer_id: must not be empty");
    o.customer_id = "c-1";
    o.order_id = "o-\x1b[31m";
    assert_order_rejected(&o, "order_id: must not contain control characters (found U+001B)");
}

/* ---- payment ---- */

static void test_payment_rules(void **state) {
    (void)state;
    const char *blocked[] = {"c-13"};
    flow_payment_rules_t r = {.credit_limit_cents = 100000, .blocked = blocked, .nblocked = 1};
    char reason[128] = "";
    assert_int_equal(flow_payment_decide(&r, "c-1", 100000, reason, sizeof reason), 1);
    assert_int_equal(flow_payment_decide(&r, "c-1", 150000, reason, sizeof reason), 0);
    assert_string_equal(reason, "amount 150000 exceeds credit limit 100000");
    assert_int_equal(flow_payment_decide(&r, "c-13", 1, reason, sizeof reason), 0);
    assert_string_equal(reason, "customer c-13 is blocked");
}

/* ---- order status fold ---- */

/* Fold @events in every possible arrival order and expect @want each time:
 * each index tuple in [0, n)^n that uses every event once is a permutation. */
static void assert_any_order_folds_to(const flow_status_t *events, size_t n,
                                      flow_status_t want) {
    size_t tuples = 1;
    for (size_t i = 0; i < n; i++)
        tuples *= n;
    for (size_t code = 0; code < tuples; code++) {
        flow_status_t s = FLOW_NONE;
        unsigned used = 0;
        size_t c = code, i;
        for (i = 0; i < n && !(used & 1u << c % n); i++, c /= n) {
            used |= 1u << c % n;
            s = flow_status_fold(s, events[c % n]);
        }
        if (i == n) assert_int_equal(s, want);
    }
}

static void test_fold_any_arrival_order(void **state) {
    (void)state;
    const flow_status_t shipped[] = {FLOW_PLACED, FLOW_RESERVED, FLOW_PAID, FLOW_SHIPPED};
    const flow_status_t rejected[] = {FLOW_PLACED, FLOW_REJECTED};
    const flow_status_t declined[] = {FLOW_PLACED, FLOW_RESERVED, FLOW_CANCELLED};
    assert_any_order_folds_to(shipped, 4, FLOW_SHIPPED);
    assert_any_order_folds_to(rejected, 2, FLOW_REJECTED);
    assert_any_order_folds_to(declined, 3, FLOW_CANCELLED);
}

static void test_fold_never_regresses(void **state) {
    (void)state;
    assert_int_equal(flow_status_fold(FLOW_PAID, FLOW_RESERVED), FLOW_PAID);
    assert_int_equal(flow_status_fold(FLOW_PAID, FLOW_PLACED), FLOW_PAID);
    assert_int_equal(flow_status_fold(FLOW_REJECTED, FLOW_RESERVED), FLOW_REJECTED);
    assert_int_equal(flow_status_fold(FLOW_CANCELLED, FLOW_SHIPPED), FLOW_CANCELLED);
    assert_int_equal(flow_status_fold(FLOW_SHIPPED, FLOW_CANCELLED), FLOW_SHIPPED);
    /* history-only events change nothing */
    assert_int_equal(flow_status_fold(FLOW_RESERVED, FLOW_NONE), FLOW_RESERVED);
}

static void test_status_of_event(void **state) {
    (void)state;
    assert_int_equal(flow_status_of_event("OrderPlaced"), FLOW_PLACED);
    assert_int_equal(flow_status_of_event("StockRejected"), FLOW_REJECTED);
    assert_int_equal(flow_status_of_event("PaymentDeclined"), FLOW_CANCELLED);
    assert_int_equal(flow_status_of_event("ShipmentDispatched"), FLOW_SHIPPED);
    assert_int_equal(flow_status_of_event("ShipmentScheduled"), FLOW_NONE);
    assert_int_equal(flow_status_of_event("StockReleased"), FLOW_NONE);
    assert_int_equal(flow_status_parse("CANCELLED"), FLOW_CANCELLED);
    assert_int_equal(flow_status_parse("nonsense"), FLOW_NONE);
    assert_string_equal(flow_status_name(FLOW_PAID), "PAID");
}

static void test_format_cents(void **state) {
    char buf[32];
    (void)state;
    flow_format_cents(12345, buf, sizeof buf);
    assert_string_equal(buf, "123.45");
    flow_format_cents(5, buf, sizeof buf);
    assert_string_equal(buf, "0.05");
    flow_format_cents(-150, buf, sizeof buf);
    assert_string_equal(buf, "-1.50");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fnv1a_reference_values),
        cmocka_unit_test(test_hash_id_is_deterministic),
        cmocka_unit_test(test_tracking_number),
        cmocka_unit_test(test_pick_is_stable_and_in_range),
        cmocka_unit_test(test_merge_lines_sums_repeated_skus),
        cmocka_unit_test(test_hold_decides_per_line),
        cmocka_unit_test(test_order_rules),
        cmocka_unit_test(test_payment_rules),
        cmocka_unit_test(test_fold_any_arrival_order),
        cmocka_unit_test(test_fold_never_regresses),
        cmocka_unit_test(test_status_of_event),
        cmocka_unit_test(test_format_cents),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
