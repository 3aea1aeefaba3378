# Sourced by .ci/run: a throwaway PostgreSQL server on loopback for the store and multi-runner tests.
# start_postgres sets NASFORGE_TEST_POSTGRES_URL; stop_postgres stops exactly that server (its own data
# directory) and removes its files. The server runs as an unprivileged user: as root, the `postgres` user
# (created if missing); otherwise the current user. Binaries missing? Debian's package is installed.

_pg_bin() {
    local name=$1 dir
    if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return; fi
    for dir in /usr/local/bin /usr/lib/postgresql/*/bin; do
        if [ -x "$dir/$name" ]; then echo "$dir/$name"; return; fi
    done
    return 1
}

_pg_as() {  # run a command as the server's user
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_postgres() {
    if ! _pg_bin initdb >/dev/null || ! _pg_bin pg_ctl >/dev/null; then
        echo "ci: installing PostgreSQL (Debian package)" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    fi
    local initdb pg_ctl
    initdb=$(_pg_bin initdb) && pg_ctl=$(_pg_bin pg_ctl) || { echo "ci: no PostgreSQL binaries" >&2; return 1; }
    if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
        useradd --system --no-create-home --shell /usr/sbin/nologin postgres
    fi
    NASFORGE_PG_DIR=$(mktemp -d /tmp/nasforge-ci-pg.XXXXXX)
    NASFORGE_PG_PORT=$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    NASFORGE_PG_CTL=$pg_ctl
    chmod 755 "$NASFORGE_PG_DIR"
    [ "$(id -u)" = 0 ] && chown postgres "$NASFORGE_PG_DIR"
    _pg_as "$initdb" -D "$NASFORGE_PG_DIR/data" -U nasforge -A trust --no-sync >"$NASFORGE_PG_DIR/initdb.log" 2>&1 \
        || { cat "$NASFORGE_PG_DIR/initdb.log" >&2; return 1; }
    _pg_as "$pg_ctl" -D "$NASFORGE_PG_DIR/data" -l "$NASFORGE_PG_DIR/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $NASFORGE_PG_PORT -k $NASFORGE_PG_DIR -c fsync=off -c max_connections=100" \
        start >/dev/null || { cat "$NASFORGE_PG_DIR/server.log" >&2; return 1; }
    psql -q -h 127.0.0.1 -p "$NASFORGE_PG_PORT" -U nasforge -d postgres -c "CREATE DATABASE nasforge_test" >/dev/null
    export NASFORGE_TEST_POSTGRES_URL="postgresql+psycopg://nasforge@127.0.0.1:$NASFORGE_PG_PORT/nasforge_test"
    echo "ci: PostgreSQL on 127.0.0.1:$NASFORGE_PG_PORT ($NASFORGE_PG_DIR)" >&2
}

stop_postgres() {
    if [ -n "${NASFORGE_PG_DIR:-}" ] && [ -d "$NASFORGE_PG_DIR/data" ]; then
        _pg_as "$NASFORGE_PG_CTL" -D "$NASFORGE_PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
        rm -rf "$NASFORGE_PG_DIR"
    fi
}
