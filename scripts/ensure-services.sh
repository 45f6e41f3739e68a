#!/usr/bin/env bash
# Make sure a local PostgreSQL and Redis are installed and running (apt-get when absent), and that
# `postgres` can log in over TCP from this machine without a password, as the defaults expect.
# With --browser, also install Debian's Chromium for the admin-page tests.
set -euo pipefail
. "$(dirname "$0")/apt.sh"
as_postgres() { if [ -z "$SUDO" ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi; }

if ! command -v redis-server >/dev/null 2>&1; then echo "installing redis-server"; apt_install redis-server; fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "starting redis on 127.0.0.1:6379"
  $SUDO mkdir -p /var/lib/redis /var/log/redis
  $SUDO redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi

if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then echo "installing postgresql"; apt_install postgresql; fi
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "starting postgresql"
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main start
fi

for _ in $(seq 1 100); do
  if pg_isready -q -h 127.0.0.1 -p 5432 && redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then break; fi
  sleep 0.2
done
pg_isready -h 127.0.0.1 -p 5432
redis-cli -h 127.0.0.1 -p 6379 ping

# Debian's clusters ask TCP clients for a scram-sha-256 password; the defaults log in as `postgres`
# without one. Allow exactly that from this machine, once, and only when the login fails.
tcp_login() { PGPASSWORD="${LIVERMORE_DATABASE_PASSWORD:-}" psql -X -w -q -h 127.0.0.1 -p 5432 -U postgres -d postgres -Atc 'select 1' >/dev/null 2>&1; }
if ! tcp_login; then
  hba=$(as_postgres psql -X -Atc 'show hba_file')
  echo "allowing passwordless TCP logins for postgres from 127.0.0.1 and ::1 in $hba"
  rules=$'# livermore (scripts/ensure-services.sh): postgres logs in from this machine without a password\nhost all postgres 127.0.0.1/32 trust\nhost all postgres ::1/128 trust\n'
  { printf '%s\n' "$rules"; $SUDO cat "$hba"; } > "/tmp/pg_hba.$$"
  $SUDO cp "/tmp/pg_hba.$$" "$hba"; rm -f "/tmp/pg_hba.$$"
  as_postgres psql -X -q -Atc 'select pg_reload_conf()' >/dev/null
  for _ in $(seq 1 50); do tcp_login && break; sleep 0.1; done
  tcp_login || { echo "postgres still cannot log in over TCP; see $hba" >&2; exit 1; }
fi
echo "postgres logs in at 127.0.0.1:5432"

if [ "${1:-}" = "--browser" ] && ! command -v chromium >/dev/null 2>&1; then
  echo "installing chromium"
  if ! apt_install chromium; then
    # CI must run the browser tests; elsewhere they skip without Chromium.
    if [ -n "${CI:-}" ]; then echo "chromium could not be installed" >&2; exit 1; fi
    echo "warning: chromium could not be installed; the browser tests will be skipped" >&2
  fi
fi
