# The service loop (lib/src/service/: service.c, service_txn.c, store.c) over the dev
# broker: transactions, restarts, dead letters, retries, stores, faults.
find_package(Threads REQUIRED)
evk_test(test_service SOURCES test_service.c svc_support.c LABELS integration TIMEOUT 300)
# PkgConfig::LMDB: test_store_disk_unreadable damages a value on disk itself.
target_link_libraries(test_service PRIVATE Threads::Threads PkgConfig::LMDB)
# Dead letters cut to fit dead_letter_max_bytes (value, then headers, then key).
evk_test(test_dead_letters SOURCES test_dead_letters.c svc_support.c LABELS integration TIMEOUT 120)
target_link_libraries(test_dead_letters PRIVATE Threads::Threads)
# The same at 1 MB and 10 MB through the three services that read `orders`.
add_test(NAME service_big_messages COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/test_big_messages.py)
set_tests_properties(service_big_messages PROPERTIES ENVIRONMENT "${EVK_PROC_TEST_ENV}" TIMEOUT 120)

# SIGTERM within <service>.shutdown_timeout_ms whatever the broker does: no
# broker at start-up, broker killed while idle and mid-transaction (exit 4,
# the batch abandoned); and an outage while a transaction is open is waited
# out (tests/test_shutdown.py).
add_test(NAME service_shutdown COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/test_shutdown.py)
add_test(NAME service_outage COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/test_shutdown.py --outage)
set_tests_properties(service_shutdown service_outage PROPERTIES ENVIRONMENT "${EVK_PROC_TEST_ENV}"
                     TIMEOUT 120)
