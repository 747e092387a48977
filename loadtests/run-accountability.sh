#!/usr/bin/env bash
# Runs accountability-load on SQLite (a temp file) and on PostgreSQL (a throw-away
# cluster started here with initdb/pg_ctl, as the postgres user when run as root).
# Arguments go to accountability-load (for example --cases 100000 --items 1000000).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p jiancha-loadtest --bin accountability-load
bin=target/release/accountability-load
dir=$(mktemp -d)
chmod 755 "$dir"
pgbin=$(ls -d /usr/lib/postgresql/*/bin | tail -1)
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$dir"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
as_pg "$pgbin/initdb" -D "$dir/pg" -U postgres --auth=trust -E UTF8 --locale=C -N > "$dir/initdb.log"
as_pg "$pgbin/pg_ctl" -D "$dir/pg" -o "-p $port -k $dir -c listen_addresses=127.0.0.1" -l "$dir/pg.log" -w start > /dev/null
trap 'as_pg "$pgbin/pg_ctl" -D "$dir/pg" -m immediate stop >/dev/null 2>&1; rm -rf "$dir"' EXIT
echo "== SQLite"
"$bin" --database "sqlite://$dir/cases.db" "$@"
echo "== PostgreSQL $("$pgbin/postgres" --version | awk '{print $3}')"
"$bin" --database "postgres://postgres@127.0.0.1:$port/postgres" "$@"
