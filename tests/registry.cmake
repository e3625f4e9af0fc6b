# Schema evolution (lib/src/schema/evolve.c) and the Confluent Schema Registry client
# (lib/src/schema/registry.c), against tests/registry_server.py on loopback.
evk_test(test_evolution SOURCES test_evolution.c LABELS unit)
evk_test(test_registry SOURCES test_registry.c registry_support.c LABELS unit TIMEOUT 120)
target_link_libraries(test_registry PRIVATE PkgConfig::CURL)

# A service over the dev broker with a registry that answers badly or not at
# all: dead letters, waits, /healthz and the waits' metric.
find_package(Threads REQUIRED)
evk_test(test_registry_service
  SOURCES test_registry_service.c registry_support.c svc_support.c
  LABELS integration TIMEOUT 120)
target_link_libraries(test_registry_service PRIVATE PkgConfig::CURL Threads::Threads)

add_test(NAME test_registry_e2e
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/test_registry_e2e.sh
    $<TARGET_FILE:evk-dev-broker> $<TARGET_FILE:evk-produce> $<TARGET_FILE:evk-tail>)
set_tests_properties(test_registry_e2e PROPERTIES
  ENVIRONMENT "${EVK_TEST_ENV}" LABELS integration TIMEOUT 120)
