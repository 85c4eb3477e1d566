# Shared by scripts/run, scripts/test and the benchmarks: installs what is missing and
# manages private PostgreSQL clusters. Sourced, never executed.

FEERECON_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
export PATH="/opt/swift/usr/bin:$PATH"

log() { printf '[feerecon] %s\n' "$*" >&2; }
die() { printf '[feerecon] error: %s\n' "$*" >&2; exit 1; }

# Debian packages the build and the test clusters need.
REQUIRED_PACKAGES=(libcurl4-openssl-dev libpq-dev libssl-dev openssl postgresql postgresql-contrib pkg-config)

install_missing() {
    local missing=()
    for p in "${REQUIRED_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || die "missing packages: ${missing[*]} (run as root or install them)"
        SUDO=sudo
    else
        SUDO=
    fi
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 || {
        $SUDO apt-get update -q >/dev/null
        $SUDO apt-get install -y -q "${missing[@]}" >/dev/null
    }
    command -v swift >/dev/null || die "swift not found (expected at /opt/swift/usr/bin)"
}

# The OS user a cluster runs as: initdb refuses root, so root uses the postgres account.
pg_user() {
    if [ "$(id -u)" -eq 0 ]; then echo postgres; else id -un; fi
}

as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

free_port() {
    python3 - <<'PY' 2>/dev/null || echo $((20000 + RANDOM % 20000))
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

# pg_cluster_init DIR: creates a cluster in DIR/data (trust auth on loopback only).
pg_cluster_init() {
    local dir=$1
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown "$(pg_user)" "$dir"
    as_pg "$PG_BIN/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 \
        --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
}

# pg_cluster_start DIR PORT [extra postgres options]: starts the cluster listening on 127.0.0.1.
pg_cluster_start() {
    local dir=$1 port=$2; shift 2
    as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on -c max_connections=400 -c shared_buffers=256MB $*" \
        start >/dev/null || { tail -20 "$dir/server.log" >&2; die "PostgreSQL did not start"; }
}

pg_cluster_stop() {
    local dir=$1
    [ -f "$dir/data/postmaster.pid" ] && as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1
    return 0
}
