#!/usr/bin/env bash
# Installs the real clients and servers the end-to-end tests use (Debian/Ubuntu):
# dig (dnsutils), kdig (knot-dnsutils), unbound, dnsmasq (dnsmasq-base, the program only: no service), curl, openssl.
set -euo pipefail
need=()
for pair in dig:dnsutils kdig:knot-dnsutils unbound:unbound dnsmasq:dnsmasq-base curl:curl openssl:openssl; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${pair%%:*}" ] || need+=("${pair#*:}")
done
[ ${#need[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# the packages' own services are not started (unbound's would be a resolver on port 53 of this
# machine; the tests start their own, on other ports): a policy-rc.d says no to every start, as in
# containers, for the install only (a machine's own policy-rc.d is left as it is)
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\n# scripts/test-deps.sh: no service starts during this install\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod 755 /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq -o DPkg::Lock::Timeout=600 "${need[@]}" ca-certificates >/dev/null
