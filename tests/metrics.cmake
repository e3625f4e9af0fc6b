# A service's /healthz and /metrics (lib/src/metrics*.c), its per-event log
# lines and secret redaction, over the dev broker.
find_package(Threads REQUIRED)
evk_test(test_metrics SOURCES test_metrics.c svc_support.c LABELS integration TIMEOUT 300)
target_link_libraries(test_metrics PRIVATE Threads::Threads)
