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

# -h/--help and -V/--version on every program (and after evk-order's commands).
add_test(NAME test_cli_common COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/test_cli_common.sh)
set_tests_properties(test_cli_common PROPERTIES
  ENVIRONMENT "${EVK_TEST_ENV};EVK_VERSION=${PROJECT_VERSION}" LABELS unit TIMEOUT 60)
