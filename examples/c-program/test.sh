#!/bin/sh
# Checks wc-lite against known counts.
set -e
bin="$1"
check() {
    got=$(printf "$1" | "$bin")
    [ "$got" = "$2" ] || { echo "FAIL: input '$1': got '$got', want '$2'"; exit 1; }
    echo "ok: $2"
}
check '' '0 0 0'
check 'one\n' '1 1 4'
check 'two words\nand three more\n' '2 5 25'
check '  spaced   out  ' '0 2 16'
