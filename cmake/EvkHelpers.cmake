# The helpers evkit's CMake files share: the warnings every evkit target
# gets, and how a program of the tree is built and installed.

# Picky warnings (curl's set, more or less); errors with EVK_WERROR, which
# scripts/test turns on. Never on the dependencies' headers.
set(EVK_WARNINGS -Wall -Wextra -Wshadow -Wmissing-prototypes -Wstrict-prototypes -Wformat=2
                 -Wpointer-arith -Wundef)

# evk_strict(target): evkit's warnings on one of its targets.
function(evk_strict target)
  target_compile_options(${target} PRIVATE ${EVK_WARNINGS} $<$<BOOL:${EVK_WERROR}>:-Werror>)
endfunction()

# evk_binary(name sources...): a program linked against libevkit, built with
# evkit's warnings and installed into bin/.
function(evk_binary name)
  add_executable(${name} ${ARGN})
  evk_strict(${name})
  target_link_libraries(${name} PRIVATE evkit PkgConfig::JANSSON)
  install(TARGETS ${name} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endfunction()
