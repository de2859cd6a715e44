# System dependencies only: LibTorch (PyPI wheel or the GPU machine's torch), Debian -dev packages.

# LibTorch: let the caller give CMAKE_PREFIX_PATH, else ask the python3 that holds torch.
# Naming the GPU architecture (Hopper) keeps TorchConfig from probing for a GPU at configure time.
if(NOT DEFINED TORCH_CUDA_ARCH_LIST AND NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
  set(TORCH_CUDA_ARCH_LIST "9.0")
endif()
set(CMAKE_CUDA_STANDARD 17)
set(CMAKE_CUDA_STANDARD_REQUIRED ON)
find_program(DITGEN_PYTHON NAMES python3 python)
execute_process(COMMAND ${DITGEN_PYTHON} -c "import torch.utils; print(torch.utils.cmake_prefix_path)"
                OUTPUT_VARIABLE _torch_prefix OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _rc ERROR_QUIET)
if(_rc EQUAL 0)
  list(APPEND CMAKE_PREFIX_PATH ${_torch_prefix})
endif()
find_path(DITGEN_TORCH_ROOT include/torch/csrc/api/include/torch/torch.h
          PATHS ${CMAKE_PREFIX_PATH} $ENV{CMAKE_PREFIX_PATH} PATH_SUFFIXES ../.. NO_DEFAULT_PATH REQUIRED)
get_filename_component(DITGEN_TORCH_ROOT ${DITGEN_TORCH_ROOT} REALPATH)
get_filename_component(DITGEN_TORCH_PACKAGES ${DITGEN_TORCH_ROOT} DIRECTORY)  # site-packages: torch, nvidia

# The PyPI wheel is a CUDA build, and its TorchConfig refuses to load without a CUDA toolkit. Where there
# is none (a plain Debian machine), import the wheel's libraries directly; CUDA still works at run time
# through the wheel's own NVIDIA libraries.
find_package(CUDAToolkit QUIET)
if(CUDAToolkit_FOUND OR NOT EXISTS ${DITGEN_TORCH_ROOT}/lib/libtorch_cuda.so)
  find_package(Torch REQUIRED)
  set(CMAKE_CXX_FLAGS "${CMAKE_CXX_FLAGS} ${TORCH_CXX_FLAGS}")  # the ABI define
  set(DITGEN_TORCH_USES_CUDA ${CUDAToolkit_FOUND})
else()
  message(STATUS "ditgen: no CUDA toolkit; importing LibTorch from ${DITGEN_TORCH_ROOT} directly")
  add_library(ditgen_libtorch INTERFACE)
  target_include_directories(ditgen_libtorch SYSTEM INTERFACE ${DITGEN_TORCH_ROOT}/include
                             ${DITGEN_TORCH_ROOT}/include/torch/csrc/api/include)
  target_compile_definitions(ditgen_libtorch INTERFACE _GLIBCXX_USE_CXX11_ABI=1)
  # The wheel's CUDA backend (libtorch_cuda and about 3 GB of NVIDIA libraries) is linked only where it can
  # run: by default where an NVIDIA driver is loaded. Without it LibTorch runs on the CPU alone.
  set(_cuda_default OFF)
  if(EXISTS /proc/driver/nvidia/version)
    set(_cuda_default ON)
  endif()
  option(DITGEN_TORCH_CUDA "Without a CUDA toolkit, link the LibTorch wheel's CUDA backend" ${_cuda_default})
  set(_names c10 torch_cpu)
  if(DITGEN_TORCH_CUDA)
    list(APPEND _names torch c10_cuda torch_cuda)
  endif()
  set(_libs)
  foreach(lib ${_names})
    list(APPEND _libs ${DITGEN_TORCH_ROOT}/lib/lib${lib}.so)
  endforeach()
  # --no-as-needed: libtorch_cuda registers the CUDA backend when loaded, though nothing names its symbols.
  # CMake puts the folder of these full paths on the build RPATH and swaps it for INSTALL_RPATH on install.
  target_link_libraries(ditgen_libtorch INTERFACE "-Wl,--no-as-needed" ${_libs} "-Wl,--as-needed")
  set(TORCH_LIBRARIES ditgen_libtorch)
  set(DITGEN_TORCH_USES_CUDA ${DITGEN_TORCH_CUDA})
  message(STATUS "ditgen: LibTorch's CUDA backend (DITGEN_TORCH_CUDA) ${DITGEN_TORCH_CUDA}")
endif()

find_package(CLI11 CONFIG REQUIRED)
find_package(spdlog REQUIRED)
find_package(nlohmann_json 3 REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(Threads REQUIRED)

# stb is header-only; Debian installs it under include/stb. DITGEN_STB_DIR overrides (GPU machine).
find_path(DITGEN_STB_INCLUDE stb_image_write.h PATHS ${DITGEN_STB_DIR} /usr/include/stb PATH_SUFFIXES stb REQUIRED)

# FFmpeg's libraries for MP4 output; optional so the GPU machine (no FFmpeg) still builds.
find_package(PkgConfig QUIET)
set(DITGEN_HAVE_VIDEO OFF)
if(PkgConfig_FOUND)
  pkg_check_modules(LIBAV IMPORTED_TARGET libavformat libavcodec libavutil libswscale)
  if(LIBAV_FOUND)
    set(DITGEN_HAVE_VIDEO ON)
  endif()
endif()
message(STATUS "ditgen: video output (libav) ${DITGEN_HAVE_VIDEO}")

# CUDA kernels compile wherever the toolkit is, so CPU-only CI still builds them.
set(DITGEN_HAVE_CUDA OFF)
if(DITGEN_CUDA)
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 90)
    endif()
    enable_language(CUDA)
    set(DITGEN_HAVE_CUDA ON)
  endif()
endif()
message(STATUS "ditgen: CUDA kernels ${DITGEN_HAVE_CUDA}")

# CUTLASS 3.x's headers for the Hopper int8 and FP8 GEMMs (quant/gemm_sm90.cuh): the PyPI package nvidia-cutlass
# (pinned in scripts/setup.sh) beside torch, or DITGEN_CUTLASS_DIR holding include/ and tools/util/include/.
# Without them that GEMM is left out and the integer linear runs cuBLAS's int8 GEMM on CUDA.
set(DITGEN_HAVE_CUTLASS OFF)
if(DITGEN_HAVE_CUDA)
  set(_cutlass_roots ${DITGEN_CUTLASS_DIR} ${DITGEN_TORCH_PACKAGES}/cutlass_library/source)
  find_path(DITGEN_CUTLASS_INCLUDE cutlass/gemm/collective/collective_builder.hpp
            PATHS ${_cutlass_roots} PATH_SUFFIXES include NO_DEFAULT_PATH)
  find_path(DITGEN_CUTLASS_UTIL_INCLUDE cutlass/util/packed_stride.hpp
            PATHS ${_cutlass_roots} PATH_SUFFIXES tools/util/include NO_DEFAULT_PATH)
  if(DITGEN_CUTLASS_INCLUDE AND DITGEN_CUTLASS_UTIL_INCLUDE)
    set(DITGEN_HAVE_CUTLASS ON)
  endif()
endif()
message(STATUS "ditgen: Hopper int8 GEMM (CUTLASS) ${DITGEN_HAVE_CUTLASS}")

# c10d's collective backends are inside LibTorch, but the wheel leaves out the headers two of them include:
# Gloo's (CPU tensors; Debian's libgloo-dev, or DITGEN_GLOO_DIR holding gloo/) and NCCL's (GPUs; the wheel's
# nvidia-nccl package). Only headers: the code is LibTorch's own.
find_path(DITGEN_GLOO_INCLUDE gloo/algorithm.h PATHS ${DITGEN_GLOO_DIR} NO_DEFAULT_PATH)
find_path(DITGEN_GLOO_INCLUDE gloo/algorithm.h)
if(NOT DITGEN_GLOO_INCLUDE)
  message(FATAL_ERROR "ditgen: Gloo's headers are missing (Debian: apt install libgloo-dev; else -DDITGEN_GLOO_DIR=DIR with DIR/gloo)")
endif()
set(DITGEN_HAVE_NCCL OFF)
if(DITGEN_TORCH_USES_CUDA)
  find_path(DITGEN_NCCL_INCLUDE nccl.h PATHS ${DITGEN_TORCH_PACKAGES}/nvidia/nccl/include NO_DEFAULT_PATH)
  find_path(DITGEN_NCCL_INCLUDE nccl.h)
  if(DITGEN_NCCL_INCLUDE)
    set(DITGEN_HAVE_NCCL ON)
  endif()
endif()
message(STATUS "ditgen: distributed GPU runs (NCCL) ${DITGEN_HAVE_NCCL}")

# zlib reads the gzip-compressed Fashion-MNIST files; optional, since uncompressed IDX files load without it.
find_package(ZLIB QUIET)
set(DITGEN_HAVE_ZLIB ${ZLIB_FOUND})
message(STATUS "ditgen: gzip datasets (zlib) ${DITGEN_HAVE_ZLIB}")
