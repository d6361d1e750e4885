#!/bin/bash
# Host side of `make test-v2`: builds the integration test binaries named, then boots the
# pure cgroup v2 guest (boot.sh) to run them there against PADDOCK_BIN.
#   v2-tests.sh PADDOCK_BIN TEST[:FILTER]...     (TEST: a file in tests/ without .rs)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$1
shift
names=()
for spec in "$@"; do names+=(--test "${spec%%:*}"); done
exes=$(PADDOCK_BIN=$bin cargo test --locked --no-run --message-format=json "${names[@]}" |
    jq -r 'select(.executable != null) | "\(.target.name) \(.executable)"')
args=()
for spec in "$@"; do
    name=${spec%%:*}
    exe=$(awk -v n="$name" '$1 == n { print $2 }' <<<"$exes")
    [ -n "$exe" ] || { echo "v2-tests: no test binary for $name" >&2; exit 1; }
    if [ "$name" = "$spec" ]; then args+=("$exe"); else args+=("$exe:${spec#*:}"); fi
done
exec "$here/boot.sh" "$here/run-tests.sh" "$bin" "${args[@]}"
