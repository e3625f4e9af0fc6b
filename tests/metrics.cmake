# A service's /healthz and /metrics (lib/src/service/metrics*.c), its per-event log
# lines and secret redaction, over the dev broker.
find_package(Threads REQUIRED)
evk_test(test_metrics SOURCES test_metrics.c svc_support.c LABELS integration TIMEOUT 300)
target_link_libraries(test_metrics PRIVATE Threads::Threads)

# 1,200 slow clients on one address: a fresh /healthz from another is
# answered within 1 s, the endpoint keeps its descriptors and its log short.
add_test(NAME metrics_slow_clients COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/test_metrics_slow_clients.py)
set_tests_properties(metrics_slow_clients PROPERTIES ENVIRONMENT "${EVK_TEST_ENV}" TIMEOUT 120
                     LABELS integration)
