#!/bin/sh
# OpenVPN → Tether over RADIUS, no FreeRADIUS server in between: OpenVPN hands each login's
# username and password to this script (auth-user-pass-verify … via-file), which asks
# Tether's RADIUS front end with radclient (Debian's freeradius-utils) and lets the login in
# on Access-Accept only.
#
# In the OpenVPN server's configuration:
#   script-security 2
#   auth-user-pass-verify /etc/openvpn/tether-verify.sh via-file
# and in /etc/openvpn/tether-radius.conf (mode 0600, owned by OpenVPN's user):
#   TETHER_RADIUS=tether.example.com:1812
#   TETHER_RADIUS_SECRET_FILE=/etc/openvpn/tether-radius.secret
# The secret file holds the RADIUS server's sharedSecret (its networkSourceIp is this VPN
# server's address). The secret never appears on a command line: radclient reads it with -S.
set -eu
conf=${TETHER_RADIUS_CONF:-/etc/openvpn/tether-radius.conf}
. "$conf"
creds=$1
user=$(sed -n 1p "$creds")
pass=$(sed -n 2p "$creds")
# Attribute values are quoted; a quote or backslash in them is escaped.
esc() { printf '%s' "$1" | sed 's/[\\"]/\\&/g'; }
printf 'User-Name = "%s"\nUser-Password = "%s"\nMessage-Authenticator = 0x00\n' "$(esc "$user")" "$(esc "$pass")" |
  radclient -r 2 -t 3 -S "$TETHER_RADIUS_SECRET_FILE" -x "$TETHER_RADIUS" auth 2>/dev/null |
  grep -q '^Received Access-Accept'
