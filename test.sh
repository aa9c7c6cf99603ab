#!/usr/bin/env bash
# ./test.sh [go test flags] [packages]
#
# The README's test command: finds or starts the Redis and PostgreSQL the
# tests need, then runs `go test` with the arguments given (./... when they
# name no package). On a fresh Debian/Ubuntu machine, as root, it installs
# the distribution's redis-server and postgresql packages when missing.
#
# Redis: REDIS_URL if set, else 127.0.0.1:6379 if it answers, else a
# throwaway redis-server on a free port in a temp dir.
# PostgreSQL: TEST_DATABASE_URL if set, else 127.0.0.1:5432 (database test,
# user postgres, trust auth) if it answers, else a throwaway cluster
# (initdb) on a free port in a temp dir.
# TEST_OWN_SERVERS=1 skips the finding: always throwaway servers, so a run
# shares nothing with the machine. Both are stopped and removed at exit.
#
#   ./test.sh                          # every test
#   ./test.sh -race -count=1 ./redisx/ # go test flags and packages pass through
set -euo pipefail
cd "$(dirname "$0")"

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'test.sh: %s\n' "$*" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/tsp-test.XXXXXX")
chmod 711 "$work" # the postgres user must reach its data directory below
redis_pid=
pg_ctl_cmd=()
cleanup() {
  if [ -n "$redis_pid" ]; then kill "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; fi
  if [ ${#pg_ctl_cmd[@]} -gt 0 ]; then "${pg_ctl_cmd[@]}" stop -m immediate >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# install PACKAGE...: the distribution's packages, when we may.
install() {
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    die "$* not installed: install it (Debian/Ubuntu: sudo apt-get install $*), or set REDIS_URL / TEST_DATABASE_URL"
  fi
  say "installing $*"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# port_free PORT: nothing accepts connections on 127.0.0.1:PORT.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
  local p
  for _ in $(seq 100); do
    p=$((20000 + RANDOM % 12000)) # below Linux's ephemeral range (32768-60999)
    if port_free "$p"; then echo "$p"; return; fi
  done
  die "no free port found"
}

# redis_pong PORT: a Redis answers PING there (bash's /dev/tcp: no redis-cli needed).
redis_pong() {
  local line
  (exec 3<>"/dev/tcp/127.0.0.1/$1" && printf 'PING\r\n' >&3 && IFS= read -r -t 2 line <&3 && [ "${line%$'\r'}" = "+PONG" ]) 2>/dev/null
}

own=${TEST_OWN_SERVERS:-0}

ensure_redis() {
  if [ -n "${REDIS_URL:-}" ]; then say "Redis: REDIS_URL"; return; fi
  if [ "$own" != 1 ] && redis_pong 6379; then say "Redis: 127.0.0.1:6379"; return; fi
  # The tests also start servers of their own (fault, Cluster, Sentinel) from this binary.
  command -v redis-server >/dev/null || install redis-server
  local port
  for _ in 1 2 3; do
    port=$(free_port)
    mkdir -p "$work/redis"
    redis-server --bind 127.0.0.1 --port "$port" --dir "$work/redis" --save "" --appendonly no \
      --logfile "$work/redis/redis.log" >/dev/null 2>&1 &
    redis_pid=$!
    for _ in $(seq 100); do
      if redis_pong "$port"; then
        export REDIS_URL="redis://127.0.0.1:$port/0"
        say "Redis: started $(redis-server --version | cut -d' ' -f3) on 127.0.0.1:$port"
        return
      fi
      kill -0 "$redis_pid" 2>/dev/null || break # the port was taken meanwhile: try another
      sleep 0.05
    done
    kill "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; redis_pid=
  done
  cat "$work/redis/redis.log" >&2 2>/dev/null || true
  die "redis-server did not start"
}

# pg_bin: the directory of initdb and pg_ctl (PATH, else Debian's layout).
pg_bin() {
  if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
    dirname "$(readlink -f "$(command -v initdb)")"; return
  fi
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1
}

ensure_postgres() {
  if [ -n "${TEST_DATABASE_URL:-}" ]; then say "PostgreSQL: TEST_DATABASE_URL"; return; fi
  if [ "$own" != 1 ] && command -v psql >/dev/null &&
    psql "postgres://postgres@127.0.0.1:5432/test?sslmode=disable&connect_timeout=3" -qtAc 'select 1' >/dev/null 2>&1; then
    say "PostgreSQL: 127.0.0.1:5432"; return
  fi
  local bin
  bin=$(pg_bin)
  if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
    install postgresql
    bin=$(pg_bin)
    [ -n "$bin" ] && [ -x "$bin/initdb" ] || die "postgresql installed, but no initdb found"
  fi
  # initdb and postgres refuse to run as root: run them as the postgres
  # user the package creates (or nobody).
  local as=()
  if [ "$(id -u)" = 0 ]; then
    local user=postgres
    id "$user" >/dev/null 2>&1 || user=nobody
    as=(runuser -u "$user" --)
    mkdir -p "$work/pg" && chown "$user" "$work/pg"
  fi
  "${as[@]}" "$bin/initdb" -D "$work/pg/data" -U postgres -A trust -E UTF8 --no-sync >"$work/initdb.log" 2>&1 ||
    { cat "$work/initdb.log" >&2; die "initdb failed"; }
  local port started=0
  pg_ctl_cmd=("${as[@]}" "$bin/pg_ctl" -D "$work/pg/data")
  for _ in 1 2 3; do # a port taken between the check and the bind: another
    port=$(free_port)
    if "${pg_ctl_cmd[@]}" -w -t 60 -l "$work/pg/server.log" \
      -o "-p $port -c listen_addresses=127.0.0.1 -k $work/pg -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
      start >/dev/null; then
      started=1; break
    fi
  done
  [ "$started" = 1 ] || { cat "$work/pg/server.log" >&2; die "postgres did not start"; }
  local psql=psql
  command -v psql >/dev/null || psql=$bin/psql
  "$psql" "postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable" -qc 'create database test' >/dev/null ||
    die "could not create database test"
  export TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/test?sslmode=disable"
  say "PostgreSQL: started $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port"
}

command -v go >/dev/null || die "Go is not installed: get the release go.mod names ($(awk '/^go /{print $2}' go.mod)) from https://go.dev/dl/"

ensure_redis
ensure_postgres

# No package named: every package.
pkgs=0
for a in "$@"; do
  case "$a" in ./* | ../* | . | github.com/*) pkgs=1 ;; esac
done
[ "$pkgs" = 1 ] || set -- "$@" ./...

say "go test $*"
# Not exec: the trap must stop the servers afterwards.
go test "$@"
