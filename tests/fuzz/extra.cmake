# Fuzzing (README: Fuzzing). The targets (tests/fuzz/targets) are compiled into the normal test
# binary test_fuzz, which replays the committed seed corpora and regression inputs; with
# SUPERFICIAL_FUZZ=ON (clang) each target also becomes a libFuzzer binary fuzz_<target>
# (scripts/fuzz.sh runs them).
file(GLOB SF_FUZZ_TARGET_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/targets/*.cpp)
target_sources(test_fuzz PRIVATE ${SF_FUZZ_TARGET_SOURCES})
target_compile_definitions(test_fuzz PRIVATE SF_FUZZ_SOURCE_DIR="${CMAKE_SOURCE_DIR}")

if(SUPERFICIAL_FUZZ)
  add_library(superficial_fuzz_targets STATIC ${SF_FUZZ_TARGET_SOURCES})
  target_include_directories(superficial_fuzz_targets PUBLIC ${CMAKE_CURRENT_LIST_DIR}/..)
  target_link_libraries(superficial_fuzz_targets PUBLIC superficial_core PRIVATE superficial_warnings)
  target_compile_definitions(superficial_fuzz_targets PRIVATE SF_FUZZ_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
  target_precompile_headers(superficial_fuzz_targets REUSE_FROM superficial_core)
  foreach(_src ${SF_FUZZ_TARGET_SOURCES})
    get_filename_component(_t ${_src} NAME_WE)
    if(_t STREQUAL "common")
      continue()
    endif()
    add_executable(fuzz_${_t} ${CMAKE_CURRENT_LIST_DIR}/libfuzzer/main.cpp)
    target_compile_definitions(fuzz_${_t} PRIVATE SF_FUZZ_TARGET=${_t} SF_FUZZ_TARGET_NAME="${_t}")
    target_link_libraries(fuzz_${_t} PRIVATE superficial_fuzz_targets superficial_warnings)
    target_link_options(fuzz_${_t} PRIVATE -fsanitize=fuzzer)
    # The entry point includes no torch header: no precompiled header of its own per target.
    set_target_properties(fuzz_${_t} PROPERTIES DISABLE_PRECOMPILE_HEADERS ON)
  endforeach()
endif()
