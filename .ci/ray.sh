# Sourced by .ci/run: a two-node Ray cluster on this machine for the Ray backend tests. start_ray sets
# NASFORGE_TEST_RAY_ADDRESS; stop_ray stops exactly the processes it started: those whose command line
# names one of its own temp folders, and their children (Ray workers rename themselves "ray::..."),
# never `ray stop`, which would stop every Ray node on the machine.

_ray_tree_pids() {  # PIDs whose command line contains $1, and all their descendants
    python - "$1" <<'PY'
import os, sys
mark = sys.argv[1]
children, roots, parent_of = {}, set(), {}
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        with open(f"/proc/{pid}/stat") as f:
            ppid = f.read().rsplit(")", 1)[1].split()[1]
    except OSError:
        continue
    children.setdefault(ppid, []).append(pid)
    parent_of[pid] = ppid
    if mark in cmd:
        roots.add(pid)
mine, pid = set(), str(os.getpid())
while pid in parent_of and pid not in mine:  # never this helper or the shells that called it
    mine.add(pid)
    pid = parent_of[pid]
roots -= mine
todo, seen = list(roots), set()
while todo:
    pid = todo.pop()
    if pid not in seen:
        seen.add(pid)
        todo += children.get(pid, [])
print(" ".join(sorted(seen)))
PY
}

start_ray() {
    NASFORGE_RAY_DIR=$(mktemp -d /tmp/nasforge-ci-ray.XXXXXX)
    local port
    port=$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    export RAY_USAGE_STATS_ENABLED=0
    # A loopback-only test cluster: no token authentication, stated explicitly so that a token left in
    # ~/.ray by an earlier local `ray.init()` does not switch it on for some processes and not others.
    export RAY_AUTH_MODE=disabled
    local common=(--num-cpus 1 --object-store-memory 100000000 --disable-usage-stats)
    ray start --head --node-ip-address 127.0.0.1 --port "$port" --include-dashboard false \
        --temp-dir "$NASFORGE_RAY_DIR/head" "${common[@]}" >"$NASFORGE_RAY_DIR/head.log" 2>&1 \
        || { cat "$NASFORGE_RAY_DIR/head.log" >&2; return 1; }
    ray start --address "127.0.0.1:$port" --node-ip-address 127.0.0.1 --temp-dir "$NASFORGE_RAY_DIR/node2" \
        "${common[@]}" >"$NASFORGE_RAY_DIR/node2.log" 2>&1 || { cat "$NASFORGE_RAY_DIR/node2.log" >&2; return 1; }
    export NASFORGE_TEST_RAY_ADDRESS="127.0.0.1:$port"
    echo "ci: Ray head at $NASFORGE_TEST_RAY_ADDRESS and a second node ($NASFORGE_RAY_DIR)" >&2
}

stop_ray() {
    if [ -n "${NASFORGE_RAY_DIR:-}" ] && [ -d "$NASFORGE_RAY_DIR" ]; then
        local pids
        pids=$(_ray_tree_pids "$NASFORGE_RAY_DIR")
        if [ -n "$pids" ]; then  # one list, taken before any dies (orphans lose their parent link)
            kill -TERM $pids 2>/dev/null || true
            sleep 2
            kill -KILL $pids 2>/dev/null || true
        fi
        rm -rf "$NASFORGE_RAY_DIR"
    fi
}
