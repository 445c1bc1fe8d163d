# Build helpers shared by every stage folder.

macro(synth_find_dependencies)
  find_package(Threads REQUIRED)
  find_package(Torch REQUIRED)
  find_package(Boost 1.74 REQUIRED)
  find_package(fmt REQUIRED)
  find_package(spdlog REQUIRED)
  find_package(nlohmann_json 3.9 REQUIRED)
  find_package(doctest QUIET)
  find_package(ZLIB REQUIRED)
  find_package(JPEG REQUIRED)
  find_package(PNG REQUIRED)
  # TOML++ is used header-only in both flavors (the GPU box has no package for it, only headers
  # gathered by tools/gpu-deps.sh into third_party/, which is ignored by git).
  find_path(TOMLPP_INCLUDE_DIR toml++/toml.h
            HINTS ${CMAKE_CURRENT_SOURCE_DIR}/.deps/usr/include /usr/include)
  if(NOT TOMLPP_INCLUDE_DIR)
    message(FATAL_ERROR "TOML++ headers not found: run tools/install-deps.sh (Debian) or tools/gpu-deps.sh")
  endif()
  find_path(DOCTEST_INCLUDE_DIR doctest/doctest.h
            HINTS ${CMAKE_CURRENT_SOURCE_DIR}/.deps/usr/include /usr/include)
  # Torch's exported flags include -D_GLIBCXX_USE_CXX11_ABI; keep them on every torch target.
  string(REPLACE " " ";" SYNTH_TORCH_CXX_FLAGS "${TORCH_CXX_FLAGS}")
endmacro()

# synth_module(NAME SOURCES... [DEPS libs...] [TORCH]) declares library synth_NAME.
# TORCH marks a stage that includes LibTorch; those share one precompiled header.
function(synth_module name)
  cmake_parse_arguments(M "TORCH" "" "SOURCES;DEPS" ${ARGN})
  add_library(synth_${name} STATIC ${M_SOURCES})
  target_include_directories(synth_${name} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(synth_${name} PUBLIC ${M_DEPS} Threads::Threads)
  target_compile_options(synth_${name} PRIVATE -Wall -Wextra -Wno-unused-parameter)
  if(M_TORCH)
    synth_use_torch(synth_${name})
  endif()
endfunction()

# Links LibTorch and reuses the single torch precompiled header (a torch TU costs ~18 s to
# parse on the 2-core CI machine; with the PCH ~3 s).
function(synth_use_torch target)
  target_link_libraries(${target} PUBLIC ${TORCH_LIBRARIES})
  target_compile_options(${target} PUBLIC ${SYNTH_TORCH_CXX_FLAGS})
  if(NOT TARGET synth_torch_pch)
    # CONFIGURE rewrites the file only when its content changes, so a re-configure rebuilds nothing.
    file(CONFIGURE OUTPUT ${PROJECT_BINARY_DIR}/torch_pch.cpp CONTENT "// precompiled-header carrier\n")
    add_library(synth_torch_pch STATIC ${PROJECT_BINARY_DIR}/torch_pch.cpp)
    target_link_libraries(synth_torch_pch PUBLIC ${TORCH_LIBRARIES})
    target_compile_options(synth_torch_pch PUBLIC ${SYNTH_TORCH_CXX_FLAGS})
    target_precompile_headers(synth_torch_pch PRIVATE <torch/torch.h>)
  endif()
  target_precompile_headers(${target} REUSE_FROM synth_torch_pch)
endfunction()

# synth_test(NAME SOURCES... DEPS libs... [TORCH]) builds one doctest binary and registers it with CTest.
function(synth_test name)
  cmake_parse_arguments(T "TORCH" "" "SOURCES;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${T_SOURCES} ${PROJECT_SOURCE_DIR}/tests/doctest_main.cpp)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/tests ${DOCTEST_INCLUDE_DIR})
  target_link_libraries(${name} PRIVATE ${T_DEPS} Threads::Threads)
  target_compile_definitions(${name} PRIVATE SYNTH_TEST_DATA="${PROJECT_SOURCE_DIR}/tests/data"
                                              SYNTH_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  if(T_TORCH)
    synth_use_torch(${name})
  endif()
  add_test(NAME ${name} COMMAND ${name})
  if(T_LABELS)
    set_tests_properties(${name} PROPERTIES LABELS "${T_LABELS}")
  endif()
endfunction()

# synth_app(NAME SOURCE DEPS...) builds one thin executable from src/app.
function(synth_app name source)
  add_executable(${name} ${source})
  target_link_libraries(${name} PRIVATE ${ARGN})
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/bin)
  synth_use_torch(${name})
endfunction()

# synth_stage(NAME DEPS libs... [TORCH]): a stage library from every src/NAME/*.cpp. Files named
# *_gpu.cpp are host wrappers around kernels/ and are compiled only in the CUDA flavor.
function(synth_stage name)
  cmake_parse_arguments(S "TORCH" "" "DEPS" ${ARGN})
  file(GLOB sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cpp)
  file(GLOB gpu_sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*_gpu.cpp)
  if(NOT SYNTH_CUDA AND gpu_sources)
    list(REMOVE_ITEM sources ${gpu_sources})
  endif()
  if(NOT sources)
    add_library(synth_${name} INTERFACE)
    target_include_directories(synth_${name} INTERFACE ${PROJECT_SOURCE_DIR}/src)
    target_link_libraries(synth_${name} INTERFACE ${S_DEPS})
    if(S_TORCH)
      target_link_libraries(synth_${name} INTERFACE ${TORCH_LIBRARIES})
    endif()
    return()
  endif()
  set(torch_flag)
  if(S_TORCH)
    set(torch_flag TORCH)
  endif()
  synth_module(${name} SOURCES ${sources} DEPS ${S_DEPS} ${torch_flag})
  if(SYNTH_CUDA AND TARGET synth_kernels)
    target_link_libraries(synth_${name} PUBLIC synth_kernels)
    target_compile_definitions(synth_${name} PUBLIC SYNTH_WITH_CUDA=1)
  endif()
endfunction()

# synth_stage_tests(NAME DEPS libs... [TORCH]): one doctest binary test_NAME from tests/NAME/test_*.cpp
# (test_*_gpu.cpp only in the CUDA flavor).
function(synth_stage_tests name)
  cmake_parse_arguments(S "TORCH" "" "DEPS;LABELS" ${ARGN})
  file(GLOB sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/test_*.cpp)
  file(GLOB gpu_sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/test_*_gpu.cpp)
  if(NOT SYNTH_CUDA AND gpu_sources)
    list(REMOVE_ITEM sources ${gpu_sources})
  endif()
  if(NOT sources)
    return()
  endif()
  set(torch_flag)
  if(S_TORCH)
    set(torch_flag TORCH)
  endif()
  synth_test(test_${name} SOURCES ${sources} DEPS ${S_DEPS} LABELS ${S_LABELS} ${torch_flag})
endfunction()
