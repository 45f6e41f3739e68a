#!/usr/bin/env bash
# Make sure a local PostgreSQL and Redis are installed and running (apt-get when absent).
# With --browser, also install Debian's Chromium for the admin-page tests.
set -euo pipefail
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
updated=0
apt_install() {
  if [ $updated -eq 0 ]; then $SUDO apt-get update -qq; updated=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

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

if [ "${1:-}" = "--browser" ] && ! command -v chromium >/dev/null 2>&1; then
  echo "installing chromium"
  if ! apt_install chromium; then
    # CI must run the browser tests; elsewhere they skip without Chromium.
    if [ -n "${CI:-}" ]; then echo "chromium could not be installed" >&2; exit 1; fi
    echo "warning: chromium could not be installed; the browser tests will be skipped" >&2
  fi
fi
