#!/bin/sh
# valgrind-shopd.sh - run shopd under valgrind; any error or definite or
# indirect leak makes shopd exit 1, which fails the test that started it.
here=$(dirname "$0")
exec valgrind --quiet --leak-check=full --errors-for-leak-kinds=definite,indirect \
    --show-leak-kinds=definite,indirect --error-exitcode=1 \
    "${SHOPD_REAL:-$here/../shopd}" "$@"
