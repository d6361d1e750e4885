#!/bin/bash
# Usage: make-bundle.sh DIR [ARGS...]
# Writes an OCI bundle at DIR: a busybox rootfs from Debian's busybox-static and the
# default config from `paddock spec`, with terminal off and process.args = ARGS.
set -euo pipefail
dir=$1; shift
bin=${PADDOCK:-$(dirname "$0")/../target/$(rustc -vV | sed -n 's/^host: //p')/release/paddock}
rm -rf "$dir"
mkdir -p "$dir/rootfs"/{bin,etc,proc,sys,dev,tmp,root,run}
cp /bin/busybox "$dir/rootfs/bin/busybox"
for applet in $("$dir/rootfs/bin/busybox" --list); do
	[ -e "$dir/rootfs/bin/$applet" ] || ln -s busybox "$dir/rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' >"$dir/rootfs/etc/passwd"
printf 'root:x:0:\nnobody:x:65534:\n' >"$dir/rootfs/etc/group"
"$bin" spec --bundle "$dir"
args='"sh"'
if [ $# -gt 0 ]; then
	args=""
	for a in "$@"; do
		a=${a//\\/\\\\}; a=${a//\"/\\\"}
		args+="${args:+, }\"$a\""
	done
fi
# The generated config is pretty-printed one key per line, so line edits are safe.
sed -i -e 's/"terminal": true/"terminal": false/' "$dir/config.json"
python_free_args=$(printf '%s' "$args" | sed 's/[&/\]/\\&/g')
sed -i -z -e "s/\"args\": \[[^]]*\]/\"args\": [$python_free_args]/" "$dir/config.json"
