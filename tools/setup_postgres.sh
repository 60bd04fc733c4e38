#!/usr/bin/env bash
# PostgreSQL for the multi-worker tests: Debian's server package, then a check that a
# throwaway cluster starts on loopback and answers. The tests start their own clusters
# (initdb + pg_ctl in a temp dir, as the `postgres` system user the package adds);
# nothing global is configured here and Debian's own cluster is left as the package
# made it. Idempotent; quick once done. Needs root for the package and for `runuser`.
set -euo pipefail

find_bindir() {
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [[ -n $d && -x $d/initdb && -x $d/pg_ctl && -x $d/postgres ]]; then
        echo "$d"
    fi
}

BINDIR=$(find_bindir)
if [[ -z $BINDIR ]]; then
    if [[ $(id -u) -ne 0 ]]; then
        echo "tools/setup_postgres.sh: needs root to install postgresql; run it once with sudo" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    BINDIR=$(find_bindir)
fi
if [[ -z $BINDIR ]]; then
    echo "tools/setup_postgres.sh: postgresql installed but initdb/pg_ctl not found" >&2
    exit 1
fi
id postgres >/dev/null 2>&1 || {
    echo "tools/setup_postgres.sh: the postgres system user is missing (reinstall postgresql)" >&2
    exit 1
}

# Smoke check: a throwaway cluster on a free loopback port starts, answers and stops.
if [[ $(id -u) -eq 0 ]]; then
    AS=(runuser -u postgres --)
else
    AS=()
fi
TMP=$(mktemp -d /tmp/codesign-pgcheck-XXXXXX)
chmod 755 "$TMP"
[[ $(id -u) -eq 0 ]] && chown postgres "$TMP"
cleanup() {
    "${AS[@]}" "$BINDIR/pg_ctl" -D "$TMP/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$TMP"
}
trap cleanup EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"${AS[@]}" "$BINDIR/initdb" -D "$TMP/data" -U postgres -A trust --no-sync >/dev/null
"${AS[@]}" "$BINDIR/pg_ctl" -D "$TMP/data" -l "$TMP/log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $PORT -k $TMP -c fsync=off" start >/dev/null
"${AS[@]}" "$BINDIR/psql" -h 127.0.0.1 -p "$PORT" -U postgres -Atc 'select 1' >/dev/null
echo "postgresql ready: $("$BINDIR/postgres" --version) in $BINDIR (checked on 127.0.0.1:$PORT)"
