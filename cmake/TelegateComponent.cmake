# One static library per component folder, with the project's warning set.
#
#   telegate_component(NAME <name> SOURCES <files…> [DEPS <targets…>])
#
# creates target telegate_<name> (alias telegate::<name>) whose public headers live in
# <folder>/include/telegate/<name>/. Warnings are errors when TELEGATE_WERROR is on (CI).
set(TELEGATE_WARNINGS -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wno-sign-conversion
    -Wnon-virtual-dtor -Wold-style-cast -Woverloaded-virtual -Wimplicit-fallthrough)

function(telegate_warnings target)
  target_compile_options(${target} PRIVATE ${TELEGATE_WARNINGS})
  if(TELEGATE_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

function(telegate_component)
  cmake_parse_arguments(ARG "" "NAME" "SOURCES;DEPS" ${ARGN})
  add_library(telegate_${ARG_NAME} STATIC ${ARG_SOURCES})
  add_library(telegate::${ARG_NAME} ALIAS telegate_${ARG_NAME})
  target_include_directories(telegate_${ARG_NAME} PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/include)
  target_link_libraries(telegate_${ARG_NAME} PUBLIC ${ARG_DEPS})
  telegate_warnings(telegate_${ARG_NAME})
endfunction()

# A doctest executable registered with CTest.  LABELS: unit | integration.
function(telegate_test)
  cmake_parse_arguments(ARG "" "NAME" "SOURCES;DEPS;LABELS" ${ARGN})
  add_executable(${ARG_NAME} ${ARG_SOURCES})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS} telegate_doctest_main)
  telegate_warnings(${ARG_NAME})
  add_test(NAME ${ARG_NAME} COMMAND ${ARG_NAME})
  set_tests_properties(${ARG_NAME} PROPERTIES LABELS "${ARG_LABELS}")
endfunction()

# Adds a codec: its sources in codecs/<NAME>/ join telegate_codecs.
function(telegate_codec)
  cmake_parse_arguments(ARG "" "NAME" "" ${ARGN})
  file(GLOB sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/${ARG_NAME}/*.cpp)
  target_sources(telegate_codecs PRIVATE ${sources})
endfunction()
