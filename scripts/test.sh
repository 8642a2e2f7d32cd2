#!/bin/sh
# Builds quanteval twice (Release, and RelWithDebInfo with AddressSanitizer + UBSan) and runs the test
# suite in both. Usage: scripts/test.sh [ctest args...]
set -eu
cd "$(dirname "$0")/.."
jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$jobs"
(cd build && ctest --output-on-failure -j "$jobs" "$@")
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQE_SANITIZE=ON >/dev/null
cmake --build build-asan -j "$jobs"
# The sanitizer build reuses the release build's generated models, and checks the heavy tests'
# representative subset (QE_TEST_QUICK, see tests/qtest.h).
mkdir -p build-asan/models
for f in build/models/*; do ln -f "$f" build-asan/models/ 2>/dev/null || cp -f "$f" build-asan/models/; done
(cd build-asan && QE_TEST_QUICK=1 ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
   ctest --output-on-failure -j "$jobs" "$@")
