#!/bin/bash
# Job for boot.sh: runs integration test binaries (built on the host) inside the guest.
#   run-tests.sh PADDOCK_BIN TEST_BINARY[:FILTER]...
# Prints each binary's results; exits 1 if any test failed.
export PADDOCK_BIN=$1
shift
rc=0
for spec in "$@"; do
    bin=${spec%%:*}
    filter=
    [ "$bin" != "$spec" ] && filter=${spec#*:}
    echo "== guest: $(basename "$bin") $filter"
    "$bin" --test-threads=2 $filter || rc=1
done
exit $rc
