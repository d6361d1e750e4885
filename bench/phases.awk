# Phases of one `RUNTIME run` from its `strace -f -ttt -T` log (lines "PID TS CALL... <DURATION>").
# Usage: awk -v id=CONTAINER_ID -f phases.awk TRACE
# A phase starts at its landmark, the first call (in time) that matches it, and lasts until the
# next landmark found; the last one ends when the runtime's own process exits. Prints one line
# per phase found, in time order:
#   KEY START_TS MS CALLS SLOWEST
# CALLS: syscalls begun in the phase; SLOWEST: the longest (-T) of those that work rather than
# wait for another process (waits: wait4, poll, futex, sleeps, reads from a socket or pipe), as
# name(its first path, or the path its fd was opened from)=ms. Then "total MS CALLS".
# "main" is the runtime's process (the first in the log); "init" is the process that sets up
# the container's mounts and pivot_root, then execs the container's program.
function mark(key) {
	if (!(key in at)) { at[key] = ts; order[++n] = key }
}
# The first quoted argument of a call, quotes kept ("" if none).
function path(s) { return match(s, /"[^"]*"/) ? substr(s, RSTART, RLENGTH) : "" }
function duration(s) { return match(s, /<[0-9.]+>$/) ? substr(s, RSTART + 1, RLENGTH - 2) : 0 }
# What a call is about: the path it names, else the constant it starts with (PR_..., BPF_...),
# else the path its fd was opened from ("fd N" if unknown).
function about(s, p, a) {
	p = path(s)
	a = s; sub(/^[a-z0-9_]+\(/, "", a); sub(/[,)].*/, "", a)
	if (s ~ /^(read|write|sendto|recvfrom|recvmsg|sendmsg)\(/) p = ""
	if (p != "" && (a ~ /^"/ || a == "AT_FDCWD" || a ~ /^[0-9]+$/)) return p
	if (a ~ /^[A-Z][A-Z0-9_]*$/) return a
	if (a !~ /^[0-9]+$/) return ""
	return ((pid, a) in fdpath) ? fdpath[pid, a] : "fd " a
}
function waits(i) {
	return name[i] ~ /^(wait4|waitid|poll|ppoll|select|pselect6|epoll_wait|epoll_pwait|futex|nanosleep|clock_nanosleep)$/ ||
		(name[i] ~ /^(read|recvfrom|recvmsg)$/ && what[i] ~ /^fd /)
}
# Call i returned (in line s): remember the path an open gave its fd for, forget the fds that
# calls without a path (sockets, pipes, dups...) reuse.
function returned(i, s, fd, k, fds) {
	dur[i] = duration(s)
	fd = match(s, /= [0-9]+ </) ? substr(s, RSTART + 2, RLENGTH - 4) : ""
	if (name[i] ~ /^(socketpair|pipe2?)$/ && match(s, /\[[0-9]+, [0-9]+\]/)) {
		split(substr(s, RSTART + 1, RLENGTH - 2), fds, ", ")
		for (k in fds) delete fdpath[pid, fds[k]]
	} else if (fd != "" && name[i] ~ /^open/) fdpath[pid, fd] = what[i]
	else if (fd != "") delete fdpath[pid, fd]
}
{
	pid = $1; ts = $2 + 0
	call = $0; sub(/^[0-9]+ +[0-9.]+ /, "", call)
	if (NR == 1) { main = pid; mark("start") }
	last = ts
	if (call ~ /^\+\+\+ (exited|killed)/) {
		if (pid == ctr) mark("reap")
		if (pid == main) { end = ts; ended = 1 }
		next
	}
	if (call ~ /^--- /) next
	# A resumption completes the call this process left unfinished.
	if (call ~ /^<\.\.\. /) {
		if (pid in pending) { returned(pending[pid], call); delete pending[pid] }
		next
	}
	calls[++nc] = ts
	name[nc] = call; sub(/\(.*/, "", name[nc])
	what[nc] = about(call)
	if (name[nc] == "close" && what[nc] != "") delete fdpath[pid, substr(what[nc], 4)]
	if (call ~ /<unfinished \.\.\.>$/) pending[pid] = nc
	else returned(nc, call)
	p = path(call)
	if (pid == main) {
		if (call ~ /^execveat\(/) mark("reexec")
		else if (call ~ /^mkdir(at)?\(/ && p ~ /^"\/sys\/fs\/cgroup\//) mark("cgroup")
		else if (call ~ /^mkdir(at)?\(/ && (p == "\"" id "\"" || substr(p, length(p) - length(id) - 1) == "/" id "\"")) mark("state")
		else if (call ~ /^(clone3?|vfork|fork)\(/) mark("clone")
		else if ("reap" in at && call ~ /^(rmdir|unlinkat)\(/ && p ~ /^"\/sys\/fs\/cgroup\//) mark("cgrm")
		else if ("reap" in at && call ~ /^(rmdir|unlink|unlinkat)\(/) mark("strm")
	} else {
		if ("clone" in at && call ~ /^mount\(/) mark("mounts")
		else if (call ~ /^pivot_root\(/) mark("pivot")
		else if ("pivot" in at && call ~ /^execve\(/ && !ctr) { ctr = pid; mark("exec") }
	}
}
END {
	if (!ended) end = last
	for (i = 1; i <= n; i++) {
		from = at[order[i]]
		to = (i < n) ? at[order[i + 1]] : end
		c = 0; top = 0
		for (j = 1; j <= nc; j++) {
			if (calls[j] < from || calls[j] >= to) continue
			c++
			if (!waits(j) && dur[j] > dur[top]) top = j
		}
		w = what[top]
		if (length(w) > 40) w = "\"…" substr(w, length(w) - 36)
		slowest = top ? sprintf("%s(%s)=%.3f", name[top], w, dur[top] * 1000) : "-"
		gsub(/[ |]/, "_", slowest)
		printf "%s %.6f %.3f %d %s\n", order[i], from, (to - from) * 1000, c, slowest
	}
	printf "total %.3f %d\n", (end - at["start"]) * 1000, nc
}
