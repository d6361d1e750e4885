#!/bin/bash
# Side-by-side start-up benchmark: `paddock run` vs Debian's runc (and crun when the
# host supports it) vs the kernel floor, in ONE hyperfine run, alternating.
# Usage: bench/run.sh PADDOCK_BIN [RUNS]. Prints a markdown table; the ratio is the result.
set -euo pipefail
bin=$(readlink -f "$1"); runs=${2:-40}
here=$(cd "$(dirname "$0")" && pwd)
out=$here/out; mkdir -p "$out"
work=$(mktemp -d /tmp/paddock-bench.XXXXXX)
cleanup() {
	"$bin" --root "$work/paddock" delete -f bench-pe >/dev/null 2>&1 || true
	command -v runc >/dev/null && runc --root "$work/runc" delete -f bench-re >/dev/null 2>&1
	rm -rf "$work"
}
trap cleanup EXIT
PADDOCK=$bin "$here/../scripts/make-bundle.sh" "$work/bundle" /bin/true >/dev/null
# runc 1.1 predates runtime-spec 1.3; give it the same config under a version it knows.
sed -i 's/"ociVersion": "[^"]*"/"ociVersion": "1.0.2"/' "$work/bundle/config.json"
cmds=(-n paddock "$bin --root $work/paddock run -b $work/bundle bench-p")
if command -v runc >/dev/null; then
	cmds+=(-n runc "runc --root $work/runc run -b $work/bundle bench-r")
fi
if command -v crun >/dev/null && crun --root "$work/crun" run -b "$work/bundle" bench-probe >/dev/null 2>&1; then
	cmds+=(-n crun "crun --root $work/crun run -b $work/bundle bench-c")
fi
cmds+=(-n floor "unshare --mount --pid --net --ipc --uts --fork chroot $work/bundle/rootfs /bin/true")
hyperfine -N --warmup 5 --runs "$runs" --export-json "$out/run.json" "${cmds[@]}" >"$out/hyperfine.txt" 2>&1
echo "## \`run\` of /bin/true, $runs runs each ($(nproc) cores, $(uname -r))"
echo
echo "| command | median ms | min–max ms | ratio to runc | ratio to floor |"
echo "|---|---|---|---|---|"
jq -r '
  (.results | map({(.command): .median}) | add) as $m
  | .results[]
  | [ .command,
      (.median*1000 | .*100 | round/100 | tostring),
      ((.min*1000 | .*100 | round/100 | tostring) + "–" + (.max*1000 | .*100 | round/100 | tostring)),
      (if $m.runc then (.median/$m.runc | .*100 | round/100 | tostring) else "n/a" end),
      ((.median/$m.floor) | .*100 | round/100 | tostring) ]
  | "| " + join(" | ") + " |"' "$out/run.json"
echo
printf 'binary size: paddock %s bytes' "$(stat -c %s "$bin")"
command -v runc >/dev/null && printf ', runc %s bytes' "$(stat -c %s "$(command -v runc)")"
echo

# exec latency: one long-running container per runtime, `exec true` into it.
cp -a "$work/bundle" "$work/sleeper"
sed -i -z 's/"args": \[[^]]*\]/"args": ["sleep", "3600"]/' "$work/sleeper/config.json"
"$bin" --root "$work/paddock" run -d -b "$work/sleeper" bench-pe </dev/null >/dev/null 2>&1
ecmds=(-n "paddock exec" "$bin --root $work/paddock exec bench-pe /bin/true")
if command -v runc >/dev/null; then
	runc --root "$work/runc" run -d -b "$work/sleeper" bench-re </dev/null >/dev/null 2>&1
	ecmds+=(-n "runc exec" "runc --root $work/runc exec bench-re /bin/true")
fi
hyperfine -N --warmup 5 --runs "$runs" --export-json "$out/exec.json" "${ecmds[@]}" >"$out/hyperfine-exec.txt" 2>&1
echo
echo "## \`exec\` of /bin/true into a running container, $runs runs each"
echo
echo "| command | median ms | min–max ms | ratio to runc exec |"
echo "|---|---|---|---|"
jq -r '
  (.results | map({(.command): .median}) | add) as $m
  | .results[]
  | [ .command,
      (.median*1000 | .*100 | round/100 | tostring),
      ((.min*1000 | .*100 | round/100 | tostring) + "–" + (.max*1000 | .*100 | round/100 | tostring)),
      (if $m["runc exec"] then (.median/$m["runc exec"] | .*100 | round/100 | tostring) else "n/a" end) ]
  | "| " + join(" | ") + " |"' "$out/exec.json"
