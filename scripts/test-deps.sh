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
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq -o DPkg::Lock::Timeout=600 "${need[@]}" ca-certificates >/dev/null
