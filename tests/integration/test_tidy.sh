#!/usr/bin/env bash
# src/ is clean under the repo's .clang-tidy (clang static analyzer + bugprone checks):
# scripts/tidy over the build directory's compile database, two clang-tidy processes
# (~90 s on two cores). 77 (skipped) where clang-tidy or the database is missing.
set -u
cd "${ASGD_SOURCE_DIR:-.}"
TIDY_JOBS=${TIDY_JOBS:-2} exec scripts/tidy "${ASGD_BUILD_DIR:-build}"
