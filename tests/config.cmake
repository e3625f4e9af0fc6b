# Configuration, error codes and the schema catalog.
evk_test(test_config SOURCES test_config.c LABELS unit)
evk_test(test_catalog SOURCES test_catalog.c LABELS unit)

# The programs refuse unknown keys, mistyped values and a lone -X value at
# start, before connecting anywhere.
add_test(NAME test_config_programs
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/test_config_programs.sh
    $<TARGET_FILE:evk-produce> $<TARGET_FILE:payment-service> $<TARGET_FILE:order-service>)
set_tests_properties(test_config_programs PROPERTIES
  ENVIRONMENT "${EVK_TEST_ENV}" LABELS integration TIMEOUT 60)
