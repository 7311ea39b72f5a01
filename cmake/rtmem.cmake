# Small helpers so that module CMakeLists stay three lines long.

set(RTMEM_WARNINGS -Wall -Wextra -Wshadow -Wformat=2 -Wmissing-prototypes
    -Wstrict-prototypes -Wno-unused-parameter)
if(RTMEM_WERROR)
  list(APPEND RTMEM_WARNINGS -Werror)
endif()
if(RTMEM_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer
                      -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()
add_compile_definitions(_GNU_SOURCE)
include_directories(${CMAKE_SOURCE_DIR})

# rtmem_library(name SOURCES ... LIBS ...): a static library of the project
function(rtmem_library name)
  cmake_parse_arguments(A "" "" "SOURCES;LIBS" ${ARGN})
  add_library(${name} STATIC ${A_SOURCES})
  target_compile_options(${name} PRIVATE ${RTMEM_WARNINGS})
  set_target_properties(${name} PROPERTIES POSITION_INDEPENDENT_CODE ON)
  target_link_libraries(${name} PUBLIC ${A_LIBS})
endfunction()

# rtmem_executable(name SOURCES ... LIBS ...)
function(rtmem_executable name)
  cmake_parse_arguments(A "" "" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${A_SOURCES})
  target_compile_options(${name} PRIVATE ${RTMEM_WARNINGS})
  target_link_libraries(${name} PRIVATE ${A_LIBS})
endfunction()

# rtmem_unit_test(name SOURCES ... LIBS ...): a cmocka test registered with CTest
function(rtmem_unit_test name)
  cmake_parse_arguments(A "" "" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${A_SOURCES})
  target_compile_options(${name} PRIVATE ${RTMEM_WARNINGS})
  target_link_libraries(${name} PRIVATE ${A_LIBS} PkgConfig::CMOCKA)
  add_test(NAME unit.${name} COMMAND ${name})
  set_tests_properties(unit.${name} PROPERTIES LABELS unit TIMEOUT 120
                       SKIP_RETURN_CODE 77)
endfunction()
