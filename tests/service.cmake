# The service loop (lib/src/service.c, service_txn.c, store.c) over the dev
# broker: transactions, restarts, dead letters, retries, stores, faults.
find_package(Threads REQUIRED)
evk_test(test_service SOURCES test_service.c svc_support.c LABELS integration TIMEOUT 300)
target_link_libraries(test_service PRIVATE Threads::Threads)
