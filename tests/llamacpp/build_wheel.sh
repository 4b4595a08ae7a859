#!/usr/bin/env bash
# Build a CPU-only llama-cpp-python wheel once, cache it, install it into a venv.
#
#   tests/llamacpp/build_wheel.sh [VENV]          (default VENV: .venv)
#
# The wheel is the referee of tests/test_llamacpp_conformance.py: the real
# llama.cpp loads fitagent's hollow GGUF files and reports what it allocates.
#
# Environment:
#   LLAMA_CPP_VERSION  llama-cpp-python version to build (default 0.3.36;
#                      the conformance tests were written against it)
#   LLAMA_CPP_SDIST    a local sdist (.tar.gz) or source tree to build from
#                      instead of downloading the sdist from the package index
#   WHEEL_CACHE        where built wheels are kept (default .cache/wheels)
#   BUILD_JOBS         parallel compile jobs (default: number of CPUs)
#   FORCE_REBUILD=1    rebuild even when a cached wheel exists
#
#   EXTRA_CMAKE_ARGS   appended to the CMake options below, e.g. "-DGGML_AVX2=OFF
#                      -DGGML_FMA=OFF -DGGML_F16C=OFF" for an x86 CPU without AVX2, or
#                      "-DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON" for one wheel that
#                      picks its kernels at run time (a much longer build)
#
# The build is CPU-only and portable: CUDA/HIP/Vulkan/Metal/BLAS are switched
# off explicitly (nvcc on PATH must not turn a GPU backend on), -march=native
# is off (GGML_NATIVE=OFF: on x86-64 ggml then targets AVX2/FMA/F16C, any x86
# CPU since 2013; elsewhere the compiler's baseline), no curl, no multimodal
# (mtmd) library. Needs a C/C++ compiler; CMake and Ninja come from PyPI through
# pip's build isolation when the system has none. The tests read llama.cpp's
# memory figures from its log, so the CPU kernels chosen do not change them
# (only the CPU_REPACK buffer depends on the instruction set).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="${1:-$root/.venv}"
version="${LLAMA_CPP_VERSION:-0.3.36}"
cache="${WHEEL_CACHE:-$root/.cache/wheels}"
jobs="${BUILD_JOBS:-$(nproc 2>/dev/null || echo 2)}"
py="$venv/bin/python"

if [ ! -x "$py" ]; then
    echo "build_wheel.sh: no python at $py (pass the venv as the first argument)" >&2
    exit 2
fi
mkdir -p "$cache"

shopt -s nullglob
wheels=("$cache"/llama_cpp_python-"$version"-*.whl)
shopt -u nullglob

if [ "${FORCE_REBUILD:-0}" != "1" ] && [ "${#wheels[@]}" -gt 0 ]; then
    echo "build_wheel.sh: using cached ${wheels[0]}"
else
    if [ -n "${LLAMA_CPP_SDIST:-}" ]; then
        src="$LLAMA_CPP_SDIST"
    else
        src="llama-cpp-python==$version"
    fi
    echo "build_wheel.sh: building $src (CPU only, $jobs jobs) into $cache"
    start=$(date +%s)
    # Each option is forced: scikit-build-core passes CMAKE_ARGS to cmake.
    export CMAKE_ARGS="-DGGML_CUDA=OFF -DGGML_HIP=OFF -DGGML_MUSA=OFF \
-DGGML_VULKAN=OFF -DGGML_METAL=OFF -DGGML_SYCL=OFF -DGGML_OPENCL=OFF \
-DGGML_BLAS=OFF -DGGML_RPC=OFF -DGGML_NATIVE=OFF -DGGML_CCACHE=OFF \
-DLLAMA_CURL=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF \
-DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF \
${EXTRA_CMAKE_ARGS:-}"
    export CMAKE_BUILD_PARALLEL_LEVEL="$jobs"
    export FORCE_CMAKE=1
    # nvcc on PATH must not leak into the build through these.
    unset CUDACXX CUDA_PATH CUDAToolkit_ROOT || true
    "$py" -m pip wheel --no-deps --no-binary llama-cpp-python \
        --wheel-dir "$cache" "$src"
    echo "build_wheel.sh: built in $(( $(date +%s) - start )) s"
    wheels=("$cache"/llama_cpp_python-"$version"-*.whl)
fi

# The wheel's own dependencies (numpy, jinja2, diskcache, typing-extensions)
# come from the package index as usual.
"$py" -m pip install "${wheels[0]}"
"$py" - <<'PY'
import llama_cpp
print("build_wheel.sh: llama_cpp", llama_cpp.__version__, "importable;",
      "GPU offload supported:", bool(llama_cpp.llama_supports_gpu_offload()))
PY
