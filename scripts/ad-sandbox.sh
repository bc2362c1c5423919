#!/usr/bin/env bash
# ad-sandbox.sh - a private Samba 4 AD domain controller on a loopback address,
# for Tether development and integration tests (Debian 12, run as root).
#
#   scripts/ad-sandbox.sh up     [--dir DIR] [--ip IP] [--realm REALM] [--domain NETBIOS] [--admin-pass PASS]
#   scripts/ad-sandbox.sh env    [--dir DIR]
#   scripts/ad-sandbox.sh seed   [--dir DIR] [--users N] [--prefix P]
#   scripts/ad-sandbox.sh down   [--dir DIR]
#   scripts/ad-sandbox.sh grant-tombstones [--dir DIR]
#   scripts/ad-sandbox.sh status [--dir DIR]
#
# Everything (databases, sockets, pid/lock/log files, TLS material) lives in DIR, so several
# sandboxes can run side by side on different loopback IPs (127.0.0.2, 127.0.0.3, ...).
# `eval "$(scripts/ad-sandbox.sh env)"` exports for tests: TETHER_AD_DIR, TETHER_AD_URL
# (ldaps://IP:636), TETHER_AD_HOST, TETHER_AD_REALM, TETHER_AD_NETBIOS, TETHER_AD_BASE_DN,
# TETHER_AD_ADMIN_DN, TETHER_AD_ADMIN_PASSWORD, TETHER_AD_CA_FILE, and after `seed` also
# TETHER_AD_IMPORT_DN, TETHER_AD_IMPORT_PASSWORD, TETHER_AD_GROUP_DN (the JumpCloud group),
# TETHER_AD_SEED_PREFIX, TETHER_AD_SEED_PASSWORD (password of every seeded user).
# `seed` adds (idempotently) in CN=Users: service account jcimport; global security groups
# JumpCloud, "JumpCloud Admins", PGroup1 (member of JumpCloud), PGroup2 (member of PGroup1);
# users Puser0001..N round robin in JumpCloud, PGroup1, PGroup2 (P = prefix, default sb);
# Puser0001 is also in "JumpCloud Admins".
# `grant-tombstones` (after `seed`) lets the import account read the tombstones in
# CN=Deleted Objects (List Contents + Read Property, idempotent), as an admin would with
# `dsacls` on Windows, for the import agent's `TombstonesReadable` (docs/decisions.md).
# Samba tools: use `samba-tool ... --configfile=DIR/etc/smb.conf -H DIR/private/sam.ldb`, or
# over the network `-H ldap://IP -U 'NETBIOS\Administrator%PASS'` (without the NETBIOS\
# prefix samba-tool sends the default domain WORKGROUP and the DC refuses the login).
#
# Layout of DIR:
#   etc/smb.conf  private/ state/ cache/ bind-dns/   written by samba-tool domain provision
#   run/ (pids, ncalrpc, winbindd, ntp_signd sockets)  log/   tls/{ca,cert,key}.pem
#   sandbox.env (settings + exports)  sandbox.pid  samba.out  provision.log  seed.log
set -euo pipefail

# ---------------------------------------------------------------- defaults ---------------
DIR=${TETHER_AD_DIR:-./.ad-sandbox}
# Variables exported by another sandbox's `env` must not leak into this one's sandbox.env.
unset "${!TETHER_AD_@}"
IP=127.0.0.2
REALM=CORP.EXAMPLE.TEST
NETBIOS=CORP
ADMIN_PASS='Adm1n-Sandbox-Pass!'
USERS=20
PREFIX=sb
# Fixed seed passwords: complex, and containing no token of the account or display names.
IMPORT_PASS='Jc-Imp0rt-Tether!9'
SEED_PASS='S33d-Tether-Pw!7'
PACKAGES=(samba-ad-dc samba-ad-provision samba winbind ldap-utils krb5-user openssl)
# Services the DC runs. Default Samba also starts smbd (s3fs), rpc, nbt, wrepl, cldap, drepl,
# kcc, winbindd, ntp_signd, dnsupdate and dns; several of those bind shared ports (nbt binds
# the 127.255.255.255 broadcast address, so a second DC would clash) and none is needed here.
# We keep `ldap` (LDAP/LDAPS, also ldapi in DIR/private) and `kdc` (Kerberos on IP:88 and
# kpasswd on 464, so kinit/GSSAPI tests are possible; it is cheap). Local tools such as
# `samba-tool user syncpasswords -H DIR/private/sam.ldb` open the database files directly and
# need no service at all.
SERVICES='ldap, kdc'

die() { echo "ad-sandbox: $*" >&2; exit 1; }
log() { echo "ad-sandbox: $*" >&2; }
# Single-quote a value for eval-able shell output.
q() { local s=${1//\'/\'\\\'\'}; printf "'%s'" "$s"; }

# Microsecond clock and "elapsed since" in seconds with one decimal, for timing reports.
now() { echo "${EPOCHREALTIME//[!0-9]/}"; }
elapsed() { local d=$(($(now) - $1)); printf '%d.%d s' $((d / 1000000)) $((d / 100000 % 10)); }

usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

# ---------------------------------------------------------------- arguments --------------
[[ $# -ge 1 ]] || usage
CMD=$1; shift
SET_IP='' SET_REALM='' SET_NETBIOS='' SET_PASS=''
while [[ $# -gt 0 ]]; do
  [[ $# -ge 2 ]] || die "option $1 needs a value"
  case $1 in
    --dir) DIR=$2 ;;
    --ip) IP=$2 SET_IP=1 ;;
    --realm) REALM=${2^^} SET_REALM=1 ;;
    --domain) NETBIOS=${2^^} SET_NETBIOS=1 ;;
    --admin-pass) ADMIN_PASS=$2 SET_PASS=1 ;;
    --users) USERS=$2 ;;
    --prefix) PREFIX=$2 ;;
    *) die "unknown option $1" ;;
  esac
  shift 2
done
[[ $USERS =~ ^[0-9]+$ ]] || die "--users must be a number"
DIR=$(realpath -m -- "$DIR")
CONF=$DIR/etc/smb.conf
PIDFILE=$DIR/sandbox.pid
ENVFILE=$DIR/sandbox.env

# Settings of an existing sandbox win over the command line (the DC is provisioned with them).
load_env() {
  [[ -f $ENVFILE ]] || return 0
  # shellcheck disable=SC1090
  source "$ENVFILE"
  if [[ -n $SET_IP$SET_REALM$SET_NETBIOS$SET_PASS ]] &&
     [[ $IP != "$TETHER_AD_HOST" || $REALM != "$TETHER_AD_REALM" ||
        $NETBIOS != "$TETHER_AD_NETBIOS" || $ADMIN_PASS != "$TETHER_AD_ADMIN_PASSWORD" ]]; then
    log "warning: $DIR is already provisioned; using its settings, not the options given"
  fi
  IP=$TETHER_AD_HOST REALM=$TETHER_AD_REALM NETBIOS=$TETHER_AD_NETBIOS
  ADMIN_PASS=$TETHER_AD_ADMIN_PASSWORD
}

base_dn() { local r=${REALM,,}; echo "DC=${r//./,DC=}"; }

# Writes DIR/sandbox.env (also the source of truth for `env`). Seed variables appear once
# `seed` has run.
write_env() {
  local base; base=$(base_dn)
  {
    echo "export TETHER_AD_DIR=$(q "$DIR")"
    echo "export TETHER_AD_URL=$(q "ldaps://$IP:636")"
    echo "export TETHER_AD_HOST=$(q "$IP")"
    echo "export TETHER_AD_REALM=$(q "$REALM")"
    echo "export TETHER_AD_NETBIOS=$(q "$NETBIOS")"
    echo "export TETHER_AD_BASE_DN=$(q "$base")"
    echo "export TETHER_AD_ADMIN_DN=$(q "CN=Administrator,CN=Users,$base")"
    echo "export TETHER_AD_ADMIN_PASSWORD=$(q "$ADMIN_PASS")"
    echo "export TETHER_AD_CA_FILE=$(q "$DIR/tls/ca.pem")"
    if [[ -n ${TETHER_AD_IMPORT_DN:-} ]]; then
      echo "export TETHER_AD_IMPORT_DN=$(q "$TETHER_AD_IMPORT_DN")"
      echo "export TETHER_AD_IMPORT_PASSWORD=$(q "$TETHER_AD_IMPORT_PASSWORD")"
      echo "export TETHER_AD_GROUP_DN=$(q "$TETHER_AD_GROUP_DN")"
      echo "export TETHER_AD_SEED_PREFIX=$(q "$TETHER_AD_SEED_PREFIX")"
      echo "export TETHER_AD_SEED_PASSWORD=$(q "$TETHER_AD_SEED_PASSWORD")"
    fi
  } >"$ENVFILE.tmp"
  mv "$ENVFILE.tmp" "$ENVFILE"
}

# ---------------------------------------------------------------- process helpers --------
# Start time of a live process (clock ticks since boot, field 22 of /proc/PID/stat); fails
# for zombies (dead, waiting to be reaped by init).
start_time() {
  local s f; s=$(<"/proc/$1/stat") || return 1
  read -r -a f <<<"${s##*") "}"
  [[ ${f[0]} != Z ]] && echo "${f[19]}"
}

# Prints the pid of our samba if it is alive. sandbox.pid holds "PID STARTTIME": the start
# time guards against pid reuse (samba rewrites its command line, so that cannot be checked).
samba_pid() {
  local pid st
  [[ -f $PIDFILE ]] || return 1
  read -r pid st <"$PIDFILE" || true
  [[ $pid =~ ^[0-9]+$ && -n $st ]] || return 1
  [[ $(start_time "$pid" 2>/dev/null) == "$st" ]] || return 1
  echo "$pid"
}

# True while any non-zombie process is left in session $1 (samba and all its children).
# shellcheck disable=SC2009  # pgrep cannot tell zombies apart
session_alive() { [[ $(ps -o stat= --sid "$1" | grep -cv '^ *Z' || true) -gt 0 ]]; }

ldaps_ok() {
  LDAPTLS_CACERT=$DIR/tls/ca.pem LDAPTLS_REQCERT=demand \
    ldapsearch -o nettimeout=2 -H "ldaps://$IP" -x -LLL -b '' -s base highestCommittedUSN \
    >/dev/null 2>&1
}

# LDAP tools bound as Administrator over LDAPS.
ldap_admin() {
  local tool=$1; shift
  LDAPTLS_CACERT=$DIR/tls/ca.pem "$tool" -H "ldaps://$IP" -x \
    -D "CN=Administrator,CN=Users,$(base_dn)" -w "$ADMIN_PASS" "$@"
}

# ---------------------------------------------------------------- up ---------------------
install_packages() {
  local p missing=()
  for p in "${PACKAGES[@]}"; do
    [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == *'ok installed' ]] || missing+=("$p")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
}

# A CA and a server certificate with the IP and host name as subjectAltNames: Samba's own
# self-made certificate has no SAN, which rustls (and any strict client) rejects.
make_tls() {
  local t=$DIR/tls host="dc1.${REALM,,}"
  mkdir -p "$t"; chmod 700 "$t"
  ( umask 077
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -keyout "$t/ca-key.pem" \
      -out "$t/ca.pem" -subj "/CN=Tether AD sandbox CA ($IP)" \
      -addext 'basicConstraints=critical,CA:TRUE' -addext 'keyUsage=critical,keyCertSign,cRLSign'
    openssl req -newkey rsa:2048 -nodes -keyout "$t/key.pem" -out "$t/cert.csr" -subj "/CN=$host"
    printf '%s\n' 'basicConstraints=CA:FALSE' 'keyUsage=critical,digitalSignature,keyEncipherment' \
      'extendedKeyUsage=serverAuth' "subjectAltName=IP:$IP,DNS:$host,DNS:${REALM,,}" >"$t/cert.ext"
    openssl x509 -req -in "$t/cert.csr" -CA "$t/ca.pem" -CAkey "$t/ca-key.pem" -CAcreateserial \
      -days 3650 -extfile "$t/cert.ext" -out "$t/cert.pem"
  ) >/dev/null 2>&1 || die "openssl failed"
  chmod 600 "$t/key.pem" "$t/ca-key.pem"; chmod 644 "$t/ca.pem" "$t/cert.pem"
}

provision() {
  local start r=$DIR/run; start=$(now)
  log "provisioning $REALM ($NETBIOS) in $DIR"
  mkdir -p "$DIR" "$r" "$DIR/log"
  # If provisioning fails, remove what we created (DIR was empty or absent: checked by caller).
  trap 'rm -rf -- "$DIR"' EXIT
  make_tls
  # --targetdir already puts smb.conf, private dir, lock dir, state and cache directories and
  # binddns dir under DIR; everything else that defaults to a shared system path is set here.
  # `interfaces` needs a mask: a bare 127.0.0.x matches no interface.
  # The userPassword hash schemes cannot be enabled later by a reload.
  # NetBIOS name DC1 / host dc1: the machine's host name may be longer than 15 characters.
  samba-tool domain provision --targetdir="$DIR" --realm="$REALM" --domain="$NETBIOS" \
    --server-role=dc --dns-backend=NONE --use-rfc2307 --adminpass="$ADMIN_PASS" \
    --host-name=dc1 --host-ip="$IP" \
    --option="netbios name = DC1" \
    --option="interfaces = $IP/8" --option="bind interfaces only = yes" \
    --option="server services = $SERVICES" \
    --option="password hash userPassword schemes = CryptSHA256 CryptSHA512" \
    --option="pid directory = $r" --option="ncalrpc dir = $r/ncalrpc" \
    --option="winbindd socket directory = $r/winbindd" \
    --option="ntp signd socket directory = $r/ntp_signd" \
    --option="log file = $DIR/log/samba.log" \
    --option="tls enabled = yes" --option="tls keyfile = $DIR/tls/key.pem" \
    --option="tls certfile = $DIR/tls/cert.pem" --option="tls cafile = $DIR/tls/ca.pem" \
    >"$DIR/provision.log" 2>&1 || { tail -n 20 "$DIR/provision.log" >&2; false; }
  # Test policy: complexity stays on (default), but no minimum password age, so tests can set
  # and then change a password right away.
  samba-tool domain passwordsettings set --configfile="$CONF" -H "$DIR/private/sam.ldb" \
    --complexity=on --min-pwd-age=0 >>"$DIR/provision.log" 2>&1
  write_env
  touch "$DIR/.provisioned"
  trap - EXIT
  log "provisioned in $(elapsed "$start")"
}

start_samba() {
  local pid deadline=$((SECONDS + 60)) start; start=$(now)
  rm -f "$PIDFILE"
  # setsid: samba leads its own session and process group, so `down` can kill the whole group
  # (samba forks worker processes) without touching any other samba on the machine.
  setsid samba -s "$CONF" --foreground --no-process-group </dev/null >>"$DIR/samba.out" 2>&1 &
  pid=$!
  echo "$pid $(start_time "$pid")" >"$PIDFILE"
  until ldaps_ok; do
    if ! samba_pid >/dev/null; then
      tail -n 5 "$DIR/samba.out" "$DIR/log/samba.log" >&2; stop_samba
      die "samba exited during startup (logs: $DIR/samba.out, $DIR/log/samba.log)"
    fi
    (( SECONDS < deadline )) || { stop_samba; die "LDAPS on $IP:636 did not answer in 60 s"; }
    sleep 0.1
  done
  log "samba started (pid $pid), LDAPS answered after $(elapsed "$start")"
}

cmd_up() {
  local pid
  install_packages
  if [[ ! -f $DIR/.provisioned ]]; then
    if [[ -e $DIR ]] && [[ -n $(ls -A "$DIR") ]]; then
      die "$DIR exists, is not empty and is not a provisioned sandbox (remove it?)"
    fi
    provision
  fi
  load_env
  if pid=$(samba_pid); then
    # Already running (perhaps still starting): wait for LDAPS like a fresh start would.
    local deadline=$((SECONDS + 60))
    until ldaps_ok; do
      (( SECONDS < deadline )) || die "samba (pid $pid) runs but LDAPS does not answer"
      sleep 0.2
    done
  else
    start_samba
  fi
  cat "$ENVFILE"
}

# ---------------------------------------------------------------- down / status ----------
# Stops the samba recorded in sandbox.pid with all its children, even if the main process is
# already gone and left orphans (seen when a task fails at startup: with --no-process-group
# the dying samba does not take its children with it).
stop_samba() {
  local pid='' p i found='' grace=100
  [[ -f $PIDFILE ]] && { read -r pid _ <"$PIDFILE" || true; }
  [[ $pid =~ ^[0-9]+$ ]] || { rm -f "$PIDFILE"; return 0; }
  if samba_pid >/dev/null; then found=1; else
    # Main process gone: orphans ignore SIGTERM, so SIGKILL them at once. The session id
    # cannot be reused while the session has members; still check they are samba.
    grace=0
    for p in $(pgrep -s "$pid"); do
      [[ $(readlink "/proc/$p/exe") == */samba ]] && found=1
    done
  fi
  if [[ -n $found ]]; then
    # samba was started by setsid: its pid is also its process group and session id.
    kill -TERM -- "-$pid" 2>/dev/null || true
    for ((i = 0; i < grace + 50; i++)); do   # 10 s for a clean exit, then SIGKILL
      session_alive "$pid" || break
      if ((i == grace)); then pkill -KILL -s "$pid" || true; fi
      sleep 0.1
    done
    session_alive "$pid" && die "samba (session $pid) did not stop"
    log "samba (pid $pid) stopped"
  fi
  rm -f "$PIDFILE"
}

cmd_status() {
  local pid
  if pid=$(samba_pid) && ldaps_ok; then
    echo "running (pid $pid, ldaps://$IP:636, $DIR)"
  elif [[ -n ${pid:-} ]]; then
    echo "starting or unhealthy (pid $pid, LDAPS not answering, $DIR)"; return 1
  else
    echo "stopped ($DIR)"; return 1
  fi
}

# ---------------------------------------------------------------- seed -------------------
b64pwd() { printf '"%s"' "$1" | iconv -f UTF-8 -t UTF-16LE | base64 -w0; }

cmd_seed() {
  local base users existing n name dn groups i start; start=$(now)
  local -A want exists                   # group DN -> member DNs (one a line); names found
  ldaps_ok || die "the DC in $DIR is not running (run: $0 up --dir $DIR)"
  base=$(base_dn); users="CN=Users,$base"
  local jc="CN=JumpCloud,$users" jca="CN=JumpCloud Admins,$users"
  local g1="CN=${PREFIX}Group1,$users" g2="CN=${PREFIX}Group2,$users"
  # Existing accounts (by sAMAccountName, lower case), to add only what is missing.
  existing=$(ldap_admin ldapsearch -LLL -o ldif-wrap=no -b "$users" -s one \
    "(|(sAMAccountName=jcimport)(sAMAccountName=JumpCloud*)(sAMAccountName=$PREFIX*))" \
    sAMAccountName | sed -n 's/^sAMAccountName: //p')
  while IFS= read -r name; do [[ -n $name ]] && exists[${name,,}]=1; done <<<"$existing"
  has() { [[ -n ${exists[${1,,}]:-} ]]; }

  # 1) entries to add
  {
    if ! has jcimport; then
      printf '%s\n' "dn: CN=jcimport,$users" objectClass:\ user sAMAccountName:\ jcimport \
        "userPrincipalName: jcimport@${REALM,,}" 'displayName: JumpCloud import' \
        "unicodePwd:: $(b64pwd "$IMPORT_PASS")" 'userAccountControl: 66048' ''
    fi
    for name in JumpCloud 'JumpCloud Admins' "${PREFIX}Group1" "${PREFIX}Group2"; do
      has "$name" || printf '%s\n' "dn: CN=$name,$users" objectClass:\ group \
        "sAMAccountName: $name" 'groupType: -2147483646' ''
    done
    local pw; pw=$(b64pwd "$SEED_PASS")
    for ((i = 1; i <= USERS; i++)); do
      printf -v n '%04d' "$i"; name="${PREFIX}user$n"
      has "$name" && continue
      printf '%s\n' "dn: CN=$name,$users" objectClass:\ user "sAMAccountName: $name" \
        "userPrincipalName: $name@${REALM,,}" "givenName: First$n" "sn: Last$n" \
        "displayName: First$n Last$n" "mail: $name@${REALM,,}" "unicodePwd:: $pw" \
        'userAccountControl: 512' ''
    done
  } >"$DIR/seed-add.ldif"
  if [[ -s $DIR/seed-add.ldif ]]; then
    ldap_admin ldapadd -f "$DIR/seed-add.ldif" >"$DIR/seed.log" 2>&1 ||
      { tail -n 20 "$DIR/seed.log" >&2; die "ldapadd failed (log: $DIR/seed.log)"; }
  fi

  # 2) wanted memberships: nesting, and users round robin over JumpCloud, Group1, Group2
  want[$jc]="$g1"; want[$g1]="$g2"; want[$jca]="CN=${PREFIX}user0001,$users"
  groups=("$jc" "$g1" "$g2")
  for ((i = 1; i <= USERS; i++)); do
    printf -v n '%04d' "$i"; dn="CN=${PREFIX}user$n,$users"
    want[${groups[(i - 1) % 3]}]+=$'\n'"$dn"
  done
  ((USERS >= 1)) || want[$jca]=''
  # Add only members not already there (a modify adding an existing value fails as a whole).
  : >"$DIR/seed-member.ldif"
  for dn in "$jc" "$jca" "$g1" "$g2"; do
    local have missing m
    have=$(ldap_admin ldapsearch -LLL -o ldif-wrap=no -b "$dn" -s base member |
      sed -n 's/^member: //p')
    missing=$(grep -vixF -f <(printf '%s\n' "$have" | grep .) <<<"${want[$dn]}" | grep . || true)
    [[ -n $missing ]] || continue
    { echo "dn: $dn"; echo 'changetype: modify'; echo 'add: member'
      mapfile -t m <<<"$missing"; printf 'member: %s\n' "${m[@]}"; echo '-'; echo; } >>"$DIR/seed-member.ldif"
  done
  if [[ -s $DIR/seed-member.ldif ]]; then
    ldap_admin ldapmodify -f "$DIR/seed-member.ldif" >>"$DIR/seed.log" 2>&1 ||
      { tail -n 20 "$DIR/seed.log" >&2; die "ldapmodify failed (log: $DIR/seed.log)"; }
  fi

  TETHER_AD_IMPORT_DN="CN=jcimport,$users" TETHER_AD_IMPORT_PASSWORD=$IMPORT_PASS
  TETHER_AD_GROUP_DN=$jc TETHER_AD_SEED_PREFIX=$PREFIX TETHER_AD_SEED_PASSWORD=$SEED_PASS
  write_env
  log "seeded $USERS users (prefix $PREFIX) in $(elapsed "$start")"
  cat "$ENVFILE"
}

# The import account may list and read CN=Deleted Objects: an ACE (A;;RPLC;;;<its SID>) added
# to the container's DACL through the database files (the container is itself deleted, so
# only a search with the Show Deleted control finds it; samba-tool dsacl does not).
cmd_grant_tombstones() {
  [[ -n ${TETHER_AD_IMPORT_DN:-} ]] || die "run seed first"
  /usr/bin/python3 - "$DIR/etc/smb.conf" "$DIR/private/sam.ldb" "$TETHER_AD_IMPORT_DN" <<'PY' ||
import sys, ldb
from samba.samdb import SamDB
from samba.param import LoadParm
from samba.auth import system_session
from samba.ndr import ndr_pack, ndr_unpack
from samba.dcerpc import security
conf, url, account = sys.argv[1:]
lp = LoadParm(); lp.load(conf)
db = SamDB(url=url, session_info=system_session(), lp=lp)
sid = ndr_unpack(security.dom_sid, db.search(account, scope=ldb.SCOPE_BASE, attrs=['objectSid'])[0]['objectSid'][0])
dn = 'CN=Deleted Objects,' + str(db.domain_dn())
res = db.search(dn, scope=ldb.SCOPE_BASE, attrs=['nTSecurityDescriptor'], controls=['show_deleted:1'])
sddl = ndr_unpack(security.descriptor, res[0]['nTSecurityDescriptor'][0]).as_sddl()
ace = '(A;;RPLC;;;%s)' % sid
if ace not in sddl:
    i = sddl.index('S:') if 'S:' in sddl else len(sddl)
    new = security.descriptor.from_sddl(sddl[:i] + ace + sddl[i:], security.dom_sid(db.domain_sid))
    m = ldb.Message(); m.dn = ldb.Dn(db, dn)
    m['nTSecurityDescriptor'] = ldb.MessageElement(ndr_pack(new), ldb.FLAG_MOD_REPLACE, 'nTSecurityDescriptor')
    db.modify(m, controls=['show_deleted:1', 'sd_flags:1:4'])
PY
    die "cannot grant $TETHER_AD_IMPORT_DN the reading of CN=Deleted Objects"
  log "$TETHER_AD_IMPORT_DN may read the tombstones in CN=Deleted Objects"
}

# ---------------------------------------------------------------- dispatch ---------------
case $CMD in
  up) cmd_up ;;
  env) [[ -f $ENVFILE ]] || die "$DIR is not provisioned (run: $0 up)"; cat "$ENVFILE" ;;
  seed) [[ -f $ENVFILE ]] || die "$DIR is not provisioned"; load_env; cmd_seed ;;
  down) load_env; stop_samba ;;
  grant-tombstones) [[ -f $ENVFILE ]] || die "$DIR is not provisioned"; load_env; cmd_grant_tombstones ;;
  status) load_env; cmd_status ;;
  -h|--help|help) usage ;;
  *) usage ;;
esac
