#!/usr/bin/env bash
# Formats every C++ source with the repository's .clang-format; --check only reports (exit 1 when a
# file would change). ctest runs the check (test `clang_format`).
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(find src tests -name '*.cpp' -o -name '*.hpp' -o -name '*.inc' | sort)
if [[ ${1:-} == --check ]]; then
  clang-format --dry-run --Werror "${files[@]}"
else
  clang-format -i "${files[@]}"
fi
