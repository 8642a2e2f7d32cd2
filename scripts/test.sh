#!/bin/sh
# Builds quanteval twice (Release, and Debug with AddressSanitizer + UBSan) and runs the test
# suite in both. Usage: scripts/test.sh [ctest args...]
set -eu
cd "$(dirname "$0")/.."
jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$jobs"
(cd build && ctest --output-on-failure -j "$jobs" "$@")
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQE_SANITIZE=ON >/dev/null
cmake --build build-asan -j "$jobs"
# The sanitizer build reuses the release build's generated models.
mkdir -p build-asan/models && cp -n build/models/* build-asan/models/ 2>/dev/null || true
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
   ctest --output-on-failure -j "$jobs" -L '' "$@")
