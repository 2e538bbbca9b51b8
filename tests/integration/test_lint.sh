#!/usr/bin/env bash
# The C sources stay clang-formatted, cppcheck-clean, and include banned.h (scripts/lint).
set -eu
cd "${ASGD_SOURCE_DIR:-.}"
ASGD_BUILD_DIR=${ASGD_BUILD_DIR:-build} scripts/lint
