#!/usr/bin/env bash
# Runs Tether's whole test suite against a fresh Samba AD DC (real AD over LDAPS, no mocks).
#
#   scripts/test.sh [extra cargo-nextest arguments]
#
# Provisions one DC for the run on 127.0.0.9 in target/test-ad (the test kit finds it there),
# runs every test of the workspace with cargo-nextest, and stops the DC afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

export TETHER_TEST_AD_DIR="$PWD/target/test-ad"
sandbox() { bash scripts/ad-sandbox.sh "$@" --dir "$TETHER_TEST_AD_DIR"; }

if ! command -v cargo-nextest >/dev/null 2>&1; then
  cargo install cargo-nextest --locked
fi
# PostgreSQL (the store tests run on it too), Chromium (the console's end-to-end test), and
# the LDAP clients of the LDAP front end's tests (OpenLDAP's tools, SSSD with its NSS and PAM
# modules, pamtester, nslcd with its NSS module) and the RADIUS clients of the RADIUS front
# end's tests (radtest, radclient; eapol_test for WPA-Enterprise), oathtool for TOTP codes,
# from Debian; the browser driver from npm (playwright-core; it never downloads a browser). Daemons the packages would start at
# install (nslcd) are kept stopped: the tests start their own.
missing=()
for p in postgresql chromium ldap-utils sssd-ldap libnss-sss libpam-sss pamtester nslcd libnss-ldapd freeradius-utils eapoltest oathtool; do
  [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == *'ok installed' ]] || missing+=("$p")
done
if ((${#missing[@]})); then
  apt-get update -qq
  no_start=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && no_start=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if ((no_start)); then rm -f /usr/sbin/policy-rc.d; fi
fi
[[ -d e2e/node_modules/playwright-core ]] || (cd e2e && npm ci --no-audit --no-fund)

# A fresh DC per run: stale objects from an earlier run must not leak into this one.
if [[ -d $TETHER_TEST_AD_DIR ]]; then
  sandbox down >/dev/null 2>&1 || true
  rm -rf "$TETHER_TEST_AD_DIR"
fi
mkdir -p target
# The first loopback address with nothing on the DC's ports (127.0.0.9 unless taken, e.g.
# by a developer's own test DC).
in_use() { (exec 3<>"/dev/tcp/$1/636") 2>/dev/null || (exec 3<>"/dev/tcp/$1/389") 2>/dev/null; }
ip=127.0.0.9
for n in $(seq 9 60); do
  if ! in_use "127.0.0.$n"; then ip=127.0.0.$n; break; fi
done
sandbox up --ip "$ip" >/dev/null
# The test kit starts a private PostgreSQL cluster on first use (target/test-pg); stop it too.
pg_down() {
  local data ctl
  data=$(cat target/test-pg.datadir 2>/dev/null) && [[ -f $data/postmaster.pid ]] || return 0
  ctl=$(ls /usr/lib/postgresql/*/bin/pg_ctl 2>/dev/null | sort -V | tail -n 1); ctl=${ctl:-pg_ctl}
  if ((EUID == 0)); then runuser -u postgres -- "$ctl" stop -D "$data" -m fast; else "$ctl" stop -D "$data" -m fast; fi
}
trap 'sandbox down >/dev/null 2>&1 || true; pg_down >/dev/null 2>&1 || true' EXIT
sandbox seed --users 20 >/dev/null

cargo nextest run --workspace --locked --no-fail-fast "$@"
