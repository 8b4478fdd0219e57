# One static library per component folder, with the project's warning set.
#
#   telegate_component(NAME <name> SOURCES <files…> [DEPS <targets…>])
#
# creates target telegate_<name> (alias telegate::<name>) whose public headers live in
# <folder>/include/telegate/<name>/. Warnings are errors when TELEGATE_WERROR is on (CI).
set(TELEGATE_WARNINGS -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wno-sign-conversion
    -Wnon-virtual-dtor -Wold-style-cast -Woverloaded-virtual -Wimplicit-fallthrough)

# GCC 12 at -O2/-O3 reports -Wrestrict inside libstdc++'s std::string for ordinary
# `"literal" + std::string` expressions (GCC bugs 105329 and 105651, fixed in GCC 13); with
# -Werror that broke the release preset's test build. The warning is off for GCC 12 only.
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
  list(APPEND TELEGATE_WARNINGS -Wno-restrict)
endif()

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

# A fuzz target over LLVMFuzzerTestOneInput. In the `fuzz` preset (clang, TELEGATE_FUZZ) it is a
# libFuzzer executable listed in <build>/fuzz-targets.txt for scripts/fuzz; in ordinary builds
# the same source is linked with tests/fuzz/replay_main.cpp into a unit test that replays CORPUS,
# so every build at least runs the fuzz entry point over the seeds.
#
#   telegate_fuzz_target(NAME <name> SOURCES <cpp…> DEPS <targets…> CORPUS <dir> [DEFINITIONS <defs…>]
#                        [INCLUDES <dirs…>])
function(telegate_fuzz_target)
  cmake_parse_arguments(ARG "" "NAME;CORPUS" "SOURCES;DEPS;DEFINITIONS;INCLUDES" ${ARGN})
  if(TELEGATE_FUZZ)
    set(target fuzz_${ARG_NAME})
    add_executable(${target} ${ARG_SOURCES})
    target_link_options(${target} PRIVATE -fsanitize=fuzzer)
    file(APPEND ${CMAKE_BINARY_DIR}/fuzz-targets.txt "${CMAKE_CURRENT_BINARY_DIR}/${target} ${ARG_CORPUS}\n")
  elseif(TELEGATE_BUILD_TESTS)
    set(target fuzz_replay_${ARG_NAME})
    add_executable(${target} ${ARG_SOURCES} ${PROJECT_SOURCE_DIR}/tests/fuzz/replay_main.cpp)
    add_test(NAME ${target} COMMAND ${target} ${ARG_CORPUS})
    set_tests_properties(${target} PROPERTIES LABELS unit)
  else()
    return()
  endif()
  target_link_libraries(${target} PRIVATE ${ARG_DEPS})
  target_compile_definitions(${target} PRIVATE ${ARG_DEFINITIONS})
  target_include_directories(${target} PRIVATE ${ARG_INCLUDES})
  telegate_warnings(${target})
endfunction()

# Adds a codec in one line: its sources in codecs/<NAME>/ join telegate_codecs, and it gets a
# fuzz target and a conformance test (docs/component-spec.md, "Codecs") over codecs/<NAME>/samples.
# A codec that needs options to decode anything reads them, in both, from
# codecs/<NAME>/test-options.yaml (the `codec_options` of a device type).
function(telegate_codec)
  cmake_parse_arguments(ARG "" "NAME" "" ${ARGN})
  file(GLOB sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/${ARG_NAME}/*.cpp)
  target_sources(telegate_codecs PRIVATE ${sources})
  set(samples ${CMAKE_CURRENT_SOURCE_DIR}/${ARG_NAME}/samples)
  set(options ${CMAKE_CURRENT_SOURCE_DIR}/${ARG_NAME}/test-options.yaml)
  if(NOT EXISTS ${options})
    set(options "")
  endif()
  telegate_fuzz_target(NAME codec_${ARG_NAME} SOURCES ${PROJECT_SOURCE_DIR}/tests/fuzz/codec_fuzz.cpp
    ${PROJECT_SOURCE_DIR}/tests/fuzz/codec_under_test.cpp DEPS telegate::codecs CORPUS ${samples}
    DEFINITIONS TELEGATE_CODEC_UNDER_TEST="${ARG_NAME}" TELEGATE_CODEC_OPTIONS="${options}")
  if(TELEGATE_BUILD_TESTS)
    telegate_test(NAME conformance_codec_${ARG_NAME} SOURCES ${PROJECT_SOURCE_DIR}/tests/conformance/codec_conformance.cpp
      ${PROJECT_SOURCE_DIR}/tests/fuzz/codec_under_test.cpp DEPS telegate::codecs LABELS unit)
    target_compile_definitions(conformance_codec_${ARG_NAME} PRIVATE TELEGATE_CODEC_UNDER_TEST="${ARG_NAME}"
      TELEGATE_CODEC_OPTIONS="${options}" TELEGATE_CODEC_SAMPLES="${samples}")
  endif()
endfunction()
