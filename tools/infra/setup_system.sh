#!/usr/bin/env bash
# Installs the Debian packages fleetflow's tests and demo use, when missing:
#   mosquitto  the real MQTT broker (amqtt is the embedded fallback)
#   socat      a pseudo-terminal for the flash test (mpremote to a unix-port "board")
#   wrk        the HTTP load generator of `fleetflow bench api`
#   chromium   the browser the dashboard's tests drive (Playwright, tests/ui)
# Runs apt-get only as root; otherwise says what is missing and goes on.
set -u
missing=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
command -v socat >/dev/null 2>&1 || missing+=(socat)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "setup: installing ${missing[*]} (Debian packages)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null 2>&1 || true
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
    || echo "setup: WARNING: apt-get install ${missing[*]} failed; tests fall back where they can"
else
  echo "setup: WARNING: ${missing[*]} not installed and not root: tests that need them fall back (amqtt) or skip, and say so"
fi
exit 0
