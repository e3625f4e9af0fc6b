# scripts/new-consumer end to end, in a copy of the repository: it builds a
# second tree, so it runs alone rather than starving timing-sensitive tests.
add_test(NAME scaffold_test COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/scaffold_test.sh)
set_tests_properties(scaffold_test PROPERTIES
  ENVIRONMENT "${EVK_PROC_TEST_ENV}" LABELS integration TIMEOUT 900 RUN_SERIAL TRUE)

# A program outside the tree built against the installed library (pkg-config).
# Alone: three times, only ever beside other tests, its program did not
# resolve the installed libevkit (cause not found yet).
add_test(NAME pkgconfig_test COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/pkgconfig_test.sh)
set_tests_properties(pkgconfig_test PROPERTIES ENVIRONMENT "${EVK_PROC_TEST_ENV}" TIMEOUT 120
                     RUN_SERIAL TRUE)

# The tests of consumers that scripts/new-consumer added.
include(${CMAKE_CURRENT_SOURCE_DIR}/consumers.cmake OPTIONAL)

# Every command shown in README.md and docs/, run as written (the paragraphs
# it cannot run here are listed in the script, with the reason).
add_test(NAME docs_commands COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/docs_commands.py)
set_tests_properties(docs_commands PROPERTIES ENVIRONMENT "${EVK_PROC_TEST_ENV}"
                     LABELS integration TIMEOUT 600 RUN_SERIAL TRUE)

# libevkit.so exports exactly what lib/include/evkit/ declares (EVK_EXPORT).
file(GLOB EVK_PUBLIC_HEADERS ${PROJECT_SOURCE_DIR}/lib/include/evkit/*.h)
add_test(NAME exports_test COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/exports_test.sh
         $<TARGET_FILE:evkit> ${EVK_PUBLIC_HEADERS} ${PROJECT_BINARY_DIR}/lib/include/evkit/version.h)
set_tests_properties(exports_test PROPERTIES LABELS unit TIMEOUT 60)

# lib/src's layers (its folders): no file uses one of a higher layer, by
# include or by symbol (CONTRIBUTING.md).
add_test(NAME layers_test COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/layers_test.sh
         ${PROJECT_SOURCE_DIR}/lib $<TARGET_OBJECTS:evkit_objects>)
set_tests_properties(layers_test PROPERTIES LABELS unit TIMEOUT 60)
