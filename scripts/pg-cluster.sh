#!/usr/bin/env bash
# A private PostgreSQL cluster for the tests: `eval "$(bash scripts/pg-cluster.sh start)"` starts one in a new
# temporary folder (initdb as the `postgres` user, a Unix socket only, fsync off) and prints the exports that point
# the tests at it; `bash scripts/pg-cluster.sh stop DIR` stops it and removes the folder. Installs Debian's
# `postgresql` package first when initdb is missing and this runs as root.
set -euo pipefail
find_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return 0; }
  return 1
}
as_pg() {
  # initdb and postgres refuse to run as root.
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}
case "${1:-}" in
start)
  if ! bin=$(find_bin); then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "pg-cluster.sh: installing PostgreSQL (Debian package postgresql)" >&2
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq >&2 && apt-get install -y -qq postgresql >/dev/null
      bin=$(find_bin)
    else
      echo "pg-cluster.sh: PostgreSQL's initdb is missing; install the Debian package postgresql" >&2
      exit 1
    fi
  fi
  dir=$(mktemp -d /tmp/traceflow-pg.XXXXXX)
  chmod 755 "$dir"
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown postgres: "$dir"
  fi
  as_pg "$bin/initdb" -D "$dir/data" -U traceflow --auth=trust -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 || {
    cat "$dir/initdb.log" >&2; exit 1; }
  # One role with a password, for the wrong-credentials test; everyone else is trusted on the private socket.
  as_pg sh -c "printf 'local all tf_password scram-sha-256\nlocal all all trust\n' > '$dir/data/pg_hba.conf'"
  as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses='' -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100" \
    start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
  as_pg "$bin/psql" -h "$dir" -U traceflow -d postgres -q \
    -c "CREATE ROLE tf_password LOGIN SUPERUSER PASSWORD 'right-password'" >/dev/null
  echo "export TRACEFLOW_TEST_PG='postgresql://traceflow@/postgres?host=$dir'"
  echo "export TRACEFLOW_TEST_PG_DIR='$dir'"
  ;;
stop)
  dir=${2:?usage: pg-cluster.sh stop DIR}
  bin=$(find_bin)
  [ -d "$dir/data" ] && as_pg "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  case "$dir" in /tmp/traceflow-pg.*) rm -rf "$dir" ;; esac
  ;;
*)
  echo "usage: pg-cluster.sh start | stop DIR" >&2
  exit 2
  ;;
esac
