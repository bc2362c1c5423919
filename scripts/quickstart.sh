#!/usr/bin/env bash
# Tether's main job on one machine: a sandbox Samba AD DC with sample users, tetherd on
# embedded storage, and both ADI agents connected to them.
#
#   scripts/quickstart.sh [up]   start everything (idempotent) and print the URL and API key
#   scripts/quickstart.sh down   stop everything (data is kept in .quickstart/)
#   scripts/quickstart.sh status
#
# Everything lives in .quickstart/ (state, logs, configs); the DC listens on 127.0.0.2,
# tetherd on $TETHER_LISTEN (default 127.0.0.1:8080) over HTTPS with a certificate of the
# quickstart's own CA (.quickstart/pki/ca.pem), which the agents and the CLI examples trust,
# and its LDAP front end on $TETHER_LDAP_LISTEN (default 127.0.0.1:3389, StartTLS) with the
# imported groups and a reader in LDAP.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
QS=$ROOT/.quickstart
AD_DIR=$QS/ad
LISTEN=${TETHER_LISTEN:-127.0.0.1:8080}
LDAP_LISTEN=${TETHER_LDAP_LISTEN:-127.0.0.1:3389}
URL=https://$LISTEN
PKI=$QS/pki
BIN=$ROOT/target/release

log() { echo "quickstart: $*" >&2; }
die() { echo "quickstart: $*" >&2; exit 1; }
alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop() {
  for p in sync-agent import-agent tetherd; do
    if alive "$QS/$p.pid"; then
      kill "$(cat "$QS/$p.pid")" 2>/dev/null || true
      log "stopped $p"
    fi
    rm -f "$QS/$p.pid"
  done
  bash scripts/ad-sandbox.sh down --dir "$AD_DIR" >/dev/null 2>&1 || true
  log "stopped the sandbox DC"
}

status() {
  local ok=0
  for p in tetherd import-agent sync-agent; do
    if alive "$QS/$p.pid"; then echo "$p: running (pid $(cat "$QS/$p.pid"))"; else echo "$p: stopped"; ok=1; fi
  done
  bash scripts/ad-sandbox.sh status --dir "$AD_DIR" || ok=1
  return $ok
}

api() { # METHOD PATH [BODY]
  curl -sS --fail-with-body --cacert "$PKI/ca.pem" -X "$1" "$URL$2" -H "x-api-key: $API_KEY" -H 'content-type: application/json' ${3:+-d "$3"}
}

# A CA of the quickstart's own and a certificate for tetherd signed by it (SAN: the listen
# address and localhost). Kept across runs; the keys are readable by root only.
make_pki() {
  [[ -f $PKI/tetherd.pem && -f $PKI/tetherd-key.pem ]] && return 0
  local host=${LISTEN%:*} san
  host=${host#[}; host=${host%]}
  if [[ $host =~ ^[0-9.]+$ || $host == *:* ]]; then san="IP:$host,DNS:localhost"; else san="DNS:$host,DNS:localhost"; fi
  mkdir -p "$PKI"; chmod 700 "$PKI"
  (
    set -e; cd "$PKI"; umask 077
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -keyout ca-key.pem -out ca.pem -subj "/CN=Tether quickstart CA"
    openssl req -newkey rsa:2048 -nodes -keyout tetherd-key.pem -out tetherd.csr -subj "/CN=$host"
    printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$san" >tetherd.ext
    openssl x509 -req -in tetherd.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 825 -out tetherd.pem \
      -extfile tetherd.ext
    chmod 644 ca.pem
  ) >/dev/null 2>&1 || die "openssl failed to make the quickstart's certificates"
}

# Points an agent config written by an earlier quickstart at the current URL and CA.
retarget() {
  python3 - "$1" "$URL" "$PKI/ca.pem" <<'PY'
import json, sys
path, url, ca = sys.argv[1:]
c = json.load(open(path))
if c["Server"].get("Url") != url or c["Server"].get("CaFile") != ca:
    c["Server"]["Url"], c["Server"]["CaFile"] = url, ca
    json.dump(c, open(path, "w"), indent=2)
PY
}

json_field() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval("d"+sys.argv[1]))' "$1"; }

up() {
  mkdir -p "$QS"
  command -v curl >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl; }

  log "starting the sandbox DC (installs Samba on first use)"
  bash scripts/ad-sandbox.sh up --dir "$AD_DIR" --ip 127.0.0.2 >/dev/null
  bash scripts/ad-sandbox.sh seed --dir "$AD_DIR" --users 20 >/dev/null
  # shellcheck disable=SC1091
  source "$AD_DIR/sandbox.env"

  log "building Tether (release)"
  cargo build --release --locked --bins

  [[ -f $QS/api-key ]] || { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$QS/api-key"; chmod 600 "$QS/api-key"; }
  API_KEY=$(cat "$QS/api-key")

  make_pki
  if ! alive "$QS/tetherd.pid"; then
    TETHER_BOOTSTRAP_API_KEY=$API_KEY setsid "$BIN/tetherd" serve --listen "$LISTEN" --data-dir "$QS/data" \
      --tls-cert "$PKI/tetherd.pem" --tls-key "$PKI/tetherd-key.pem" --ldap-listen "$LDAP_LISTEN" \
      </dev/null >"$QS/tetherd.out" 2>"$QS/tetherd.log" &
    echo $! >"$QS/tetherd.pid"
  fi
  for _ in $(seq 100); do curl -sf --cacert "$PKI/ca.pem" "$URL/health" >/dev/null && break; sleep 0.1; done
  curl -sf --cacert "$PKI/ca.pem" "$URL/health" >/dev/null || die "tetherd did not start; see $QS/tetherd.log"

  # The domain of the sandbox, two-way sync, with one import and one sync agent.
  local domain_id
  domain_id=$(api GET "/api/v2/activedirectories?filter=domain:eq:$TETHER_AD_BASE_DN" | json_field '[0]["id"]' 2>/dev/null || true)
  if [[ -z $domain_id ]]; then
    domain_id=$(api POST /api/v2/activedirectories "{\"domain\":\"$TETHER_AD_BASE_DN\",\"useCase\":\"TWOWAYSYNC\"}" | json_field '["id"]')
  fi
  if [[ ! -f $QS/importagent.config.json ]]; then
    local key
    key=$(api POST "/api/v2/activedirectories/$domain_id/agents" '{"agentType":"IMPORT"}' | json_field '["connectKey"]')
    cat >"$QS/importagent.config.json" <<JSON
{
  "Server": {"Url": "$URL", "ConnectKey": "$key", "StateDir": "$QS/import-state", "CaFile": "$PKI/ca.pem"},
  "Ldap": {"Url": "$TETHER_AD_URL", "BindDn": "$TETHER_AD_IMPORT_DN", "BindPassword": "$TETHER_AD_IMPORT_PASSWORD",
           "CaFile": "$TETHER_AD_CA_FILE", "InsecureSkipVerify": false,
           "RootUserContainer": "CN=Users,$TETHER_AD_BASE_DN", "AdiGroup": "$TETHER_AD_GROUP_DN",
           "AdminsGroup": "CN=JumpCloud Admins,CN=Users,$TETHER_AD_BASE_DN"},
  "InstalledOn": "dc",
  "SambaSmbConf": "$AD_DIR/etc/smb.conf",
  "MainLoop": {"PollIntervalSeconds": 1}
}
JSON
    chmod 600 "$QS/importagent.config.json"
  fi
  if [[ ! -f $QS/syncagent.config.json ]]; then
    local key
    key=$(api POST "/api/v2/activedirectories/$domain_id/agents" '{"agentType":"SYNC"}' | json_field '["connectKey"]')
    # The sync agent writes to AD; in the sandbox it binds as the domain Administrator.
    cat >"$QS/syncagent.config.json" <<JSON
{
  "Server": {"Url": "$URL", "ConnectKey": "$key", "StateDir": "$QS/sync-state", "CaFile": "$PKI/ca.pem"},
  "Ldap": {"Url": "$TETHER_AD_URL", "BindDn": "$TETHER_AD_ADMIN_DN", "BindPassword": "$TETHER_AD_ADMIN_PASSWORD",
           "CaFile": "$TETHER_AD_CA_FILE", "InsecureSkipVerify": false},
  "user_root_dn": "CN=Users,$TETHER_AD_BASE_DN",
  "poll_interval_seconds": 1,
  "sync_group": "$TETHER_AD_GROUP_DN"
}
JSON
    chmod 600 "$QS/syncagent.config.json"
  fi
  retarget "$QS/importagent.config.json"
  retarget "$QS/syncagent.config.json"
  if ! alive "$QS/import-agent.pid"; then
    setsid "$BIN/tether-agent" import --config "$QS/importagent.config.json" </dev/null >/dev/null 2>"$QS/import-agent.log" &
    echo $! >"$QS/import-agent.pid"
  fi
  if ! alive "$QS/sync-agent.pid"; then
    setsid "$BIN/tether-agent" sync --config "$QS/syncagent.config.json" </dev/null >/dev/null 2>"$QS/sync-agent.log" &
    echo $! >"$QS/sync-agent.pid"
  fi

  # Both agents report in within a few seconds.
  local states=""
  for _ in $(seq 100); do
    states=$(api GET "/api/v2/activedirectories/$domain_id/agents" | python3 -c 'import json,sys; print(" ".join(a["agentType"]+"="+a["state"] for a in json.load(sys.stdin)))')
    [[ $states == *IMPORT=active* && $states == *SYNC=active* ]] && break
    sleep 0.2
  done
  [[ $states == *IMPORT=active* && $states == *SYNC=active* ]] || die "agents not connected ($states); see $QS/*-agent.log"

  # LDAP: a reader that may search, and the groups imported from AD (their members with them).
  [[ -f $QS/ldap-reader-password ]] || { printf 'Rd-%s!' "$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$QS/ldap-reader-password"; chmod 600 "$QS/ldap-reader-password"; }
  local reader_pw reader_id ldap_id
  reader_pw=$(cat "$QS/ldap-reader-password")
  reader_id=$(api GET "/api/systemusers?filter=username:\$eq:ldap-reader" | json_field '["results"][0]["id"]' 2>/dev/null || true)
  if [[ -z $reader_id ]]; then
    reader_id=$(api POST /api/systemusers "{\"username\":\"ldap-reader\",\"email\":\"ldap-reader@example.test\",\"firstname\":\"LDAP\",\"lastname\":\"Reader\",\"password\":\"$reader_pw\",\"ldap_binding_user\":true}" | json_field '["id"]')
  fi
  ldap_id=$(api GET /api/v2/ldapservers | json_field '[0]["id"]')
  api POST "/api/v2/ldapservers/$ldap_id/associations" "{\"op\":\"add\",\"type\":\"user\",\"id\":\"$reader_id\"}" >/dev/null
  # The import's first cycle mirrors the groups within seconds.
  local groups=""
  for _ in $(seq 50); do
    groups=$(api GET "/api/v2/usergroups?limit=100" | python3 -c 'import json,sys; print(" ".join(g["id"] for g in json.load(sys.stdin) if g.get("attributes",{}).get("activeDirectory")))')
    [[ -n $groups ]] && break
    sleep 0.2
  done
  for g in $groups; do
    api POST "/api/v2/ldapservers/$ldap_id/associations" "{\"op\":\"add\",\"type\":\"user_group\",\"id\":\"$g\"}" >/dev/null
  done

  cat <<EOT

Tether is running.
  URL:          $URL            (OpenAPI: $URL/api/openapi.json)
  CA:           $PKI/ca.pem     (signed tetherd's certificate; trust it in your browser or curl --cacert)
  Console:      $URL/console    (log in with the API key)
  User portal:  $URL/portal     (users log in with their Tether password, or AD's when delegated)
  Metrics:      $URL/metrics
  LDAP:         ldap://$LDAP_LISTEN  base o=tether (StartTLS; bind as uid=ldap-reader,ou=Users,o=tether)
  API key:      $API_KEY
  AD sandbox:   $TETHER_AD_URL  base $TETHER_AD_BASE_DN  (CA: $TETHER_AD_CA_FILE)
  AD domain:    $domain_id  agents: $states
  Logs:         $QS/*.log

Try:
  export TETHER_URL=$URL TETHER_CA_FILE=$PKI/ca.pem TETHER_API_KEY=$API_KEY
  $BIN/tether ad list
  $BIN/tether ad agents $domain_id
  $BIN/tether users create --username jdoe --email jdoe@example.com --firstname John --lastname Doe
  LDAPTLS_CACERT=$PKI/ca.pem ldapsearch -x -ZZ -H ldap://$LDAP_LISTEN -D uid=ldap-reader,ou=Users,o=tether -w '$reader_pw' -b o=tether '(objectClass=posixAccount)' uid uidNumber memberOf
  scripts/quickstart.sh down
EOT
}

case ${1:-up} in
  up) up ;;
  down) stop ;;
  status) status ;;
  *) die "usage: scripts/quickstart.sh [up|down|status]" ;;
esac
