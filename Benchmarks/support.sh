# Shared by the service benchmarks (create-intent, callback-ingest): release build, a throwaway
# cluster, processes started and stopped by pid, pgbench's single-row insert as the peer, and
# medians. Sourced, never executed; scripts/lib.sh must be sourced first.

BENCH_SCRATCH=${BENCH_SCRATCH:-.build-release}

# bench_build: builds feerecon and feerecon-bench in release mode; sets FEERECON_BIN and BENCH_BIN.
bench_build() {
    log "building feerecon and feerecon-bench (release, $BENCH_SCRATCH)"
    local product
    for product in feerecon feerecon-bench; do
        swift build -c release --scratch-path "$BENCH_SCRATCH" --product "$product" 2>&1 \
            | grep -vE '^\[[0-9]+/[0-9]+\] |^(Building|Compiling|Write|Linking|Build of product)' || true
    done
    local bin
    bin="$(swift build -c release --scratch-path "$BENCH_SCRATCH" --show-bin-path)"
    # BENCH_SERVICE_BIN: another build of feerecon to measure (e.g. a copy of an earlier
    # release build), for comparing two builds on the same host in the same hour.
    FEERECON_BIN="${BENCH_SERVICE_BIN:-$bin/feerecon}"
    BENCH_BIN="$bin/feerecon-bench"
    [ -x "$FEERECON_BIN" ] && [ -x "$BENCH_BIN" ] || die "the release build produced no executables"
}

# Processes this script started, stopped (by pid) on exit.
BENCH_PIDS=()

bench_stop_processes() {
    local pid
    for pid in "${BENCH_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${BENCH_PIDS[@]}"; do
        # Bounded wait: 10 s, then SIGKILL.
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    done
    BENCH_PIDS=()
}

# wait_tcp PORT PID LOG: waits (at most 30 s) until 127.0.0.1:PORT accepts, failing if PID exits.
wait_tcp() {
    local port=$1 pid=$2 logfile=$3
    for _ in $(seq 1 300); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        kill -0 "$pid" 2>/dev/null || { tail -20 "$logfile" >&2; die "process $pid exited before listening on $port"; }
        sleep 0.1
    done
    tail -20 "$logfile" >&2
    die "nothing listening on $port after 30 s"
}

new_secret() { printf 'whsec_%s\n' "$(openssl rand -base64 32)"; }

# result_field LINE KEY: the value of KEY=… in a RESULT line.
result_field() { python3 -c 'import sys; print(dict(kv.split("=", 1) for kv in sys.argv[1].split()[1:])[sys.argv[2]])' "$1" "$2"; }

# cpu_ticks PID...: CPU clock ticks (user + system) used so far by the PIDs and their descendants:
# live processes read directly, exited children through their parent's cutime/cstime. Taken
# before and after a run, the difference is what the processes cost, whatever else the host ran.
cpu_ticks() {
    python3 - "$@" <<'PY'
import os, sys
procs = {}
for name in os.listdir("/proc"):
    if not name.isdigit():
        continue
    try:
        text = open(f"/proc/{name}/stat").read()
    except OSError:
        continue
    f = text[text.rindex(")") + 2:].split()
    procs[int(name)] = (int(f[1]), int(f[11]) + int(f[12]) + int(f[13]) + int(f[14]))
total, todo, seen = 0, [int(p) for p in sys.argv[1:]], set()
while todo:
    pid = todo.pop()
    if pid in seen or pid not in procs:
        continue
    seen.add(pid)
    total += procs[pid][1]
    todo.extend(child for child, (ppid, _) in procs.items() if ppid == pid)
print(total)
PY
}

# steal_ticks: the host's stolen CPU ticks so far (/proc/stat), to show how loaded the host was.
steal_ticks() { awk '/^cpu /{print $9}' /proc/stat; }

# us_per KTICKS COUNT: microseconds of CPU per item for a difference of clock ticks.
us_per() { python3 -c "import os, sys; print('%.0f' % (int(sys.argv[1]) * 1e6 / os.sysconf('SC_CLK_TCK') / max(1, int(sys.argv[2]))))" "$1" "$2"; }

median() { python3 -c 'import statistics, sys; print(statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }

# pgbench_prepare DB: the peer's table and script (a single-row INSERT … ON CONFLICT DO NOTHING
# transaction, as Benchmarks/db-ingest).
pgbench_prepare() {
    psql_db "$1" -c "CREATE TABLE IF NOT EXISTS bench_ingest (key bigint PRIMARY KEY, amount bigint NOT NULL, note text NOT NULL)"
    cat >"$work/ingest.sql" <<'SQL'
\set key random(1, 1000000000)
\set amount 150000
INSERT INTO bench_ingest (key, amount, note) VALUES (:key, :amount, 'bench') ON CONFLICT DO NOTHING;
SQL
    chmod 644 "$work/ingest.sql"
}

# pgbench_insert DB CLIENTS SECONDS: prints pgbench's tx/s (prepared protocol, 2 threads).
pgbench_insert() {
    local db=$1 clients=$2 seconds=$3 out
    psql_db "$db" -c "TRUNCATE bench_ingest" -c "CHECKPOINT"
    out=$("$PG_BIN/pgbench" -n -h 127.0.0.1 -p "$pg_port" -U postgres -f "$work/ingest.sql" -M prepared \
        -c "$clients" -j 2 -T "$seconds" "$db" 2>&1) || { echo "$out" >&2; die "pgbench failed"; }
    echo "pgbench db=$db clients=$clients $(echo "$out" | grep -E '^tps|processed' | tr '\n' ' ')" >>"$raw"
    echo "$out" | sed -nE 's/^tps = ([0-9.]+).*/\1/p'
}

psql_db() {
    local db=$1; shift
    "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pg_port" -U postgres -d "$db" "$@"
}
