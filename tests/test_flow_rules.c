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

typedef struct {
    const char *sku;
    int64_t available;
} stock_t;

static int64_t stock_lookup(const char *sku, void *opaque) {
    for (const stock_t *s = opaque; s->sku; s++)
        if (!strcmp(s->sku, sku)) return s->available;
    return -1;
}

static const stock_t shelf[] = {{"SKU-1", 10}, {"SKU-2", 0}, {"SKU-3", 1}, {NULL, 0}};

static void test_merge_lines_sums_repeated_skus(void **state) {
    (void)state;
    flow_line_t l[] = {{"SKU-1", 2}, {"SKU-3", 1}, {"SKU-1", 3}, {"SKU-3", 1}};
    size_t n = flow_merge_lines(l, 4);
    assert_int_equal(n, 2);
    assert_string_equal(l[0].sku, "SKU-1");
    assert_int_equal(l[0].quantity, 5);
    assert_string_equal(l[1].sku, "SKU-3");
    assert_int_equal(l[1].quantity, 2);
}

static void test_reserve_all_available(void **state) {
    (void)state;
    flow_line_t l[] = {{"SKU-1", 10}, {"SKU-3", 1}};
    const flow_line_t *bad = l;
    char reason[128] = "";
    assert_int_equal(
        flow_can_reserve(l, 2, stock_lookup, (void *)shelf, &bad, reason, sizeof reason), 1);
    assert_null(bad);
}

static void test_reserve_insufficient_names_the_line(void **state) {
    (void)state;
    flow_line_t l[] = {{"SKU-1", 1}, {"SKU-3", 2}};
    const flow_line_t *bad = NULL;
    char reason[128];
    assert_int_equal(
        flow_can_reserve(l, 2, stock_lookup, (void *)shelf, &bad, reason, sizeof reason), 0);
    assert_ptr_equal(bad, &l[1]);
    assert_string_equal(reason, "insufficient stock for SKU-3: requested 2, available 1");
}

/* An order listing the last unit twice must not get it twice. */
static void test_reserve_counts_repeated_sku_once(void **state) {
    (void)state;
    flow_line_t l[] = {{"SKU-3", 1}, {"SKU-3", 1}};
    const flow_line_t *bad;
    char reason[128];
    size_t n = flow_merge_lines(l, 2);
    assert_int_equal(
        flow_can_reserve(l, n, stock_lookup, (void *)shelf, &bad, reason, sizeof reason), 0);
    assert_string_equal(reason, "insufficient stock for SKU-3: requested 2, available 1");
}

static void test_reserve_rejects_unknown_empty_and_nonpositive(void **state) {
    (void)state;
    flow_line_t unknown[] = {{"SKU-9", 1}}, zero[] = {{"SKU-1", 0}};
    const flow_line_t *bad;
    char reason[128];
    assert_int_equal(
        flow_can_reserve(unknown, 1, stock_lookup, (void *)shelf, &bad, reason, sizeof reason),
        0);
    assert_string_equal(reason, "unknown sku SKU-9");
    assert_int_equal(
        flow_can_reserve(zero, 1, stock_lookup, (void *)shelf, &bad, reason, sizeof reason), 0);
    assert_string_equal(reason, "invalid quantity 0 for SKU-1");
    assert_int_equal(
        flow_can_reserve(zero, 0, stock_lookup, (void *)shelf, &bad, reason, sizeof reason), 0);
    assert_string_equal(reason, "order has no items");
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
        cmocka_unit_test(test_reserve_all_available),
        cmocka_unit_test(test_reserve_insufficient_names_the_line),
        cmocka_unit_test(test_reserve_counts_repeated_sku_once),
        cmocka_unit_test(test_reserve_rejects_unknown_empty_and_nonpositive),
        cmocka_unit_test(test_payment_rules),
        cmocka_unit_test(test_fold_any_arrival_order),
        cmocka_unit_test(test_fold_never_regresses),
        cmocka_unit_test(test_status_of_event),
        cmocka_unit_test(test_format_cents),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
