# Sourced by scripts/test and scripts/wheel-check: a throwaway PostgreSQL cluster from the initdb/pg_ctl binaries.
# pg_start PYTHON exports DATABASE_URL (trust auth, fsync off: for tests only) and defines pg_stop; it returns 1
# when no PostgreSQL binaries are found.

pg_bin() {
  for dir in "$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/x)")" /usr/lib/postgresql/*/bin; do
    if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then echo "$dir"; return 0; fi
  done
  return 1
}

pg_stop() { :; }

pg_start() {
  local python=$1
  PGBIN=$(pg_bin) || return 1
  PGDIR=$(mktemp -d /tmp/facepay-pg.XXXXXX)
  PGPORT=$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
  PG_AS=()
  if [ "$(id -u)" = "0" ]; then
    # PostgreSQL refuses to run as root: run the throwaway cluster as the postgres (or nobody) user.
    local os_user
    os_user=$(id -u postgres >/dev/null 2>&1 && echo postgres || echo nobody)
    chown "$os_user" "$PGDIR"
    PG_AS=(runuser -u "$os_user" --)
  fi
  "${PG_AS[@]}" "$PGBIN/initdb" -D "$PGDIR/data" -U facepay --auth=trust -E UTF8 --no-locale >"$PGDIR/initdb.log" 2>&1
  "${PG_AS[@]}" "$PGBIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/server.log" -w \
    -o "-p $PGPORT -k $PGDIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    start >/dev/null
  pg_stop() { "${PG_AS[@]}" "$PGBIN/pg_ctl" -D "$PGDIR/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$PGDIR"; }
  export DATABASE_URL="postgres://facepay@127.0.0.1:$PGPORT/postgres"
  PG_VERSION=$("$PGBIN/postgres" --version)
}
