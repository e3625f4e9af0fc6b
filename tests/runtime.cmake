# Runtime: dev broker, producer, and the evk-produce / evk-tail programs
# against independent Kafka clients (kcat, python3-confluent-kafka, python3-avro).
evk_test(test_devbroker SOURCES test_devbroker.c runtime_support.c TIMEOUT 120)
evk_test(test_producer SOURCES test_producer.c runtime_support.c TIMEOUT 120)

add_test(NAME test_interop
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/test_interop.sh
    $<TARGET_FILE:evk-dev-broker> $<TARGET_FILE:evk-produce> $<TARGET_FILE:evk-tail>)
set_tests_properties(test_interop PROPERTIES
  ENVIRONMENT "${EVK_TEST_ENV}" LABELS integration TIMEOUT 300)

# evk-produce and evk-order publish on the same awkward input (oversized lines,
# failed deliveries, bad keys, duplicate keys, NUL bytes): the same reports by
# line number, counts and exit codes.
# Alone: under the load of other tests its fatal-producer-error case has
# twice run into the 60 s limit of a program run (cause not found yet).
add_test(NAME producers_cli COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/test_producers_cli.py)
set_tests_properties(producers_cli PROPERTIES
  ENVIRONMENT "${EVK_TEST_ENV}" LABELS integration TIMEOUT 120 RUN_SERIAL TRUE)

# kcat's habits: evk-produce -k/-p/-H and evk-tail -p/-k/-t/--raw/-o s@, read
# back with python3-confluent-kafka.
add_test(NAME kcat_options COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/test_kcat_options.py)
set_tests_properties(kcat_options PROPERTIES
  ENVIRONMENT "${EVK_TEST_ENV}" LABELS integration TIMEOUT 120)

# evk-admin: the topic plan without a broker; metadata, check, lag and dlq
# replay against the dev broker, and its one line where the dev broker has no
# Admin API.
add_test(NAME evk_admin COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/test_evk_admin.py)
set_tests_properties(evk_admin PROPERTIES
  ENVIRONMENT "${EVK_TEST_ENV}" LABELS integration TIMEOUT 120)
