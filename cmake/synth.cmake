# Build helpers shared by every stage folder.

# One LibTorch everywhere: the one inside the project venv's pinned torch wheel (tools/install-deps.sh,
# tools/requirements.txt), found through torch.utils.cmake_prefix_path. SYNTH_PYTHON is that venv's
# interpreter; it also runs the Python-side checks (tools/check_export.py, bench peers).
macro(synth_find_torch)
  if(NOT DEFINED SYNTH_PYTHON)
    if(SKBUILD AND Python_EXECUTABLE)
      # pip building the Python package: the interpreter (and torch) of that environment.
      set(_synth_python ${Python_EXECUTABLE})
    elseif(EXISTS ${PROJECT_SOURCE_DIR}/.venv/bin/python3)
      set(_synth_python ${PROJECT_SOURCE_DIR}/.venv/bin/python3)
    else()
      find_program(_synth_python python3)
    endif()
    set(SYNTH_PYTHON "${_synth_python}" CACHE FILEPATH "Python whose torch wheel provides LibTorch (the project venv)")
  endif()
  if(NOT Torch_DIR)
    execute_process(COMMAND "${SYNTH_PYTHON}" -c "import torch.utils; print(torch.utils.cmake_prefix_path)"
                    OUTPUT_VARIABLE _synth_torch_prefix OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _rc ERROR_QUIET)
    if(NOT _rc EQUAL 0)
      message(FATAL_ERROR "no torch in ${SYNTH_PYTHON}: run tools/install-deps.sh (it makes .venv/ with the pinned "
                          "torch wheel), or pass -DSYNTH_PYTHON=/path/to/python3 with torch installed")
    endif()
    list(APPEND CMAKE_PREFIX_PATH "${_synth_torch_prefix}")
  endif()
  # Torch's CMake package enables CUDA itself (wheels built with CUDA need the toolkit, here
  # /usr/local/cuda) and takes the target GPUs from TORCH_CUDA_ARCH_LIST, ignoring
  # CMAKE_CUDA_ARCHITECTURES: A100 (8.0), H100/H200 (9.0), B200 (10.0).
  if(NOT DEFINED TORCH_CUDA_ARCH_LIST AND NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
    set(TORCH_CUDA_ARCH_LIST "8.0;9.0;10.0")
  endif()
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  # One CUDA runtime per process: the shared one LibTorch uses (CMake would link the static one).
  set(CMAKE_CUDA_RUNTIME_LIBRARY Shared)
  find_package(Torch REQUIRED)
  if(SYNTH_CUDA AND NOT TORCH_CUDA_LIBRARIES)
    message(FATAL_ERROR "SYNTH_CUDA is ON but ${TORCH_INSTALL_PREFIX} is a LibTorch without CUDA; "
                        "pass -DSYNTH_CUDA=OFF for a CPU-only LibTorch")
  endif()
endmacro()

macro(synth_find_dependencies)
  find_package(Threads REQUIRED)
  synth_find_torch()
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
  # Gloo's headers (declarations only: see tools/install-deps.sh) for c10d's ProcessGroupGloo.hpp.
  find_path(GLOO_INCLUDE_DIR gloo/algorithm.h HINTS ${CMAKE_CURRENT_SOURCE_DIR}/.deps/usr/include /usr/include)
  if(NOT GLOO_INCLUDE_DIR)
    message(FATAL_ERROR "Gloo headers not found: run tools/install-deps.sh (Debian: libgloo-dev) or tools/gpu-deps.sh")
  endif()
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
  # The torch wheel's libtorch.so and libtorch_cpu.so export a copy of libstdc++'s std::filesystem
  # (statically linked from the manylinux toolchain). Listed before libstdc++.so.6, they would
  # serve our calls too, with another toolchain's implementation: std::filesystem::remove_all
  # segfaulted that way. libstdc++ goes first in every torch binary's DT_NEEDED list instead.
  target_link_options(${target} PUBLIC "LINKER:--push-state,--no-as-needed" "-lstdc++" "LINKER:--pop-state")
  if(NOT TARGET synth_torch_pch)
    # CONFIGURE rewrites the file only when its content changes, so a re-configure rebuilds nothing.
    file(CONFIGURE OUTPUT ${PROJECT_BINARY_DIR}/torch_pch.cpp CONTENT "// precompiled-header carrier\n")
    add_library(synth_torch_pch STATIC ${PROJECT_BINARY_DIR}/torch_pch.cpp)
    target_link_libraries(synth_torch_pch PUBLIC ${TORCH_LIBRARIES})
    target_compile_options(synth_torch_pch PUBLIC ${SYNTH_TORCH_CXX_FLAGS})
    target_precompile_headers(synth_torch_pch PRIVATE <torch/torch.h>)
  endif()
  target_precompile_headers(${target} REUSE_FROM synth_torch_pch)
  get_target_property(_type ${target} TYPE)
  if(_type STREQUAL "EXECUTABLE")
    # The precompiled header is built -fPIC, as every library (they link into the Python module
    # too); gcc refuses it for a source compiled -fPIE, so executables compile -fPIC as well
    # (valid code in a PIE, which they still are).
    set_target_properties(${target} PROPERTIES POSITION_INDEPENDENT_CODE OFF)
    target_compile_options(${target} PRIVATE -fPIC)
  endif()
endfunction()

# synth_test(NAME SOURCES... DEPS libs... [TORCH]) builds one doctest binary and registers it with CTest.
function(synth_test name)
  cmake_parse_arguments(T "TORCH" "" "SOURCES;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${T_SOURCES} ${PROJECT_SOURCE_DIR}/tests/doctest_main.cpp)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/tests ${DOCTEST_INCLUDE_DIR})
  target_link_libraries(${name} PRIVATE ${T_DEPS} Threads::Threads)
  target_compile_definitions(${name} PRIVATE SYNTH_TEST_DATA="${PROJECT_SOURCE_DIR}/tests/fixtures"
                                              SYNTH_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  if(T_TORCH)
    synth_use_torch(${name})
  endif()
  add_test(NAME ${name} COMMAND ${name})
  # Tests run side by side (ctest -j) and spawn processes: OpenMP workers that spin while they wait
  # (libgomp's default) then steal the cores the others need. Measured on 2 cores, test_app and
  # test_fmnist_sd side by side: 213 s spinning, 117 s with passive waits.
  set_property(TEST ${name} APPEND PROPERTY ENVIRONMENT "OMP_WAIT_POLICY=PASSIVE")
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

# synth_stage_tests(NAME DEPS libs... [TORCH]): one doctest binary test_NAME from tests/NAME/test_*.cpp,
# and, in the CUDA build, one more, test_NAME_gpu, from its test_*_gpu.cpp files: labelled "gpu"
# (`ctest -L gpu` runs only those) and reported by ctest as skipped, not passed, where no CUDA
# device is present (tests/doctest_main.cpp exits with SYNTH_SKIP_RETURN_CODE).
set(SYNTH_SKIP_RETURN_CODE 77)
function(synth_stage_tests name)
  cmake_parse_arguments(S "TORCH" "" "DEPS;LABELS" ${ARGN})
  file(GLOB sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/test_*.cpp)
  file(GLOB gpu_sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/test_*_gpu.cpp)
  if(gpu_sources)
    list(REMOVE_ITEM sources ${gpu_sources})
  endif()
  set(torch_flag)
  if(S_TORCH)
    set(torch_flag TORCH)
  endif()
  if(sources)
    synth_test(test_${name} SOURCES ${sources} DEPS ${S_DEPS} LABELS cpu ${S_LABELS} ${torch_flag})
  endif()
  if(SYNTH_CUDA AND gpu_sources)
    synth_test(test_${name}_gpu SOURCES ${gpu_sources} DEPS ${S_DEPS} LABELS gpu ${torch_flag})
    target_compile_definitions(test_${name}_gpu PRIVATE SYNTH_GPU_TEST=1 SYNTH_SKIP_RETURN_CODE=${SYNTH_SKIP_RETURN_CODE})
    set_tests_properties(test_${name}_gpu PROPERTIES SKIP_RETURN_CODE ${SYNTH_SKIP_RETURN_CODE})
  endif()
endfunction()
