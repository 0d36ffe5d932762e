#!/usr/bin/env bash
# Install everything the pypasta test suite needs on a fresh Debian 12 machine.
#
# Run as root from anywhere: `bash tests/install-deps.sh`. Idempotent and quiet: it prints nothing
# unless a step fails (then the failing step's output and a one-line reason go to stderr). Steps that
# are already done are skipped, so a re-run costs well under a second.
#
#   1. Debian packages: the real tools the integration tests drive.
#   2. The CI interpreter (`python3` on PATH): `pip install -e '.[test]'` of this checkout.
#   3. The unprivileged user `pypasta-test` (rootless runs) and its /run/user/UID.
#   4. /dev/net/tun mode 0666 (distributions ship 0666; this kind of machine has 0600).
#   5. /opt/pypasta-venv: a venv from Debian's /usr/bin/python3 (the pyenv interpreter under /root is
#      not executable by other users) with pypasta's runtime dependencies, readable by everyone.
set -euo pipefail
umask 022

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TEST_USER=pypasta-test
VENV=/opt/pypasta-venv
STAMPS=/var/lib/pypasta-test
PYTHON=${PYTHON:-python3}

# busybox-static rather than busybox (they conflict): the same applets, and the static binary is
# what the locally built container image for the Podman tests is made of.
APT_PKGS=(iproute2 busybox-static socat iputils-ping isc-dhcp-client tcpdump tmux iperf3 curl
          dnsmasq-base procps psmisc passt slirp4netns python3-venv util-linux
          podman crun conmon uidmap rootlesskit containernetworking-plugins iptables dhcpcd-base)

die() { echo "install-deps.sh: $*" >&2; exit 1; }

LOG=$(mktemp /tmp/pypasta-install-deps.XXXXXX)
trap 'rm -f "$LOG"' EXIT

# Run a command with its output captured; show the output only if it fails.
quiet() {
    if ! "$@" >"$LOG" 2>&1; then
        cat "$LOG" >&2
        die "failed: $*"
    fi
}

[ "$(id -u)" -eq 0 ] || die "must run as root (it installs packages and creates a user)"
mkdir -p "$STAMPS"

# --- 1. Debian packages ----------------------------------------------------------------------------
installed=$(dpkg-query -W -f='${Package} ${Status}\n' "${APT_PKGS[@]}" 2>/dev/null || true)
missing=()
for pkg in "${APT_PKGS[@]}"; do
    case $'\n'"$installed"$'\n' in
        *$'\n'"$pkg install ok installed"$'\n'*) ;;
        *) missing+=("$pkg") ;;
    esac
done
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    quiet apt-get -o DPkg::Lock::Timeout=600 update -qq
    quiet apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}"
fi

# --- 2. The CI interpreter: editable install of this checkout with the `test` extra ----------------
# The stamp covers the interpreter, the checkout's path and pyproject.toml; the find_spec check
# (run outside the checkout) catches an install that was removed or points at another clone.
pip_key=$( { command -v "$PYTHON"; "$PYTHON" -c 'import sys; print(sys.executable)'; echo "$REPO";
             cat "$REPO/pyproject.toml"; } | sha256sum | cut -d' ' -f1)
pip_ok() {
    [ "$(cat "$STAMPS/ci-pip.stamp" 2>/dev/null)" = "$pip_key" ] || return 1
    (cd / && "$PYTHON" - "$REPO" <<'EOF'
import importlib.util, os, sys
for mod in ("pytest", "hypothesis", "scapy", "pyroute2", "pyprctl", "netaddr"):
    if importlib.util.find_spec(mod) is None:
        sys.exit(1)
spec = importlib.util.find_spec("pasta")
if spec is None or os.path.realpath(spec.origin) != os.path.realpath(os.path.join(sys.argv[1], "pasta", "__init__.py")):
    sys.exit(1)
EOF
    )
}
if ! pip_ok; then
    quiet "$PYTHON" -m pip install -q --root-user-action=ignore --disable-pip-version-check -e "$REPO[test]"
    echo "$pip_key" >"$STAMPS/ci-pip.stamp"
fi

# --- 3. The unprivileged test user ----------------------------------------------------------------
if ! getent passwd "$TEST_USER" >/dev/null; then
    # A regular (non-system) user, so useradd also gives it /etc/subuid and /etc/subgid ranges.
    quiet useradd --create-home --shell /usr/sbin/nologin --comment "pypasta rootless tests" "$TEST_USER"
fi
uid=$(id -u "$TEST_USER")
gid=$(id -g "$TEST_USER")
if [ ! -d "/run/user/$uid" ]; then
    mkdir -p "/run/user/$uid"
    chown "$uid:$gid" "/run/user/$uid"
    chmod 0700 "/run/user/$uid"
fi

# --- 4. /dev/net/tun usable by everyone, as distributions ship it ---------------------------------
if [ ! -c /dev/net/tun ]; then
    mkdir -p /dev/net
    quiet mknod -m 0666 /dev/net/tun c 10 200
fi
[ "$(stat -c %a /dev/net/tun)" = 666 ] || chmod 0666 /dev/net/tun

# --- 5. The venv for rootless runs -----------------------------------------------------------------
# Runtime dependencies come from pyproject.toml, so a dependency added there reaches the venv too.
venv_deps=$(/usr/bin/python3 - "$REPO/pyproject.toml" <<'EOF'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    deps = tomllib.load(f)["project"]["dependencies"]
print("\n".join(sorted(set(deps) | {"pyroute2", "pyprctl", "netaddr"})))
EOF
)
venv_key=$(printf '%s\n' "$venv_deps" "$(readlink -f /usr/bin/python3)" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$VENV/.pypasta-deps" 2>/dev/null)" != "$venv_key" ] || [ ! -x "$VENV/bin/python" ] \
   || ! "$VENV/bin/python" -c 'import importlib.util as u, sys; sys.exit(any(u.find_spec(m) is None for m in ("pyroute2", "pyprctl", "netaddr")))' 2>/dev/null; then
    [ -x "$VENV/bin/python" ] || quiet /usr/bin/python3 -m venv "$VENV"
    mapfile -t deps_arr <<<"$venv_deps"
    quiet "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${deps_arr[@]}"
    chmod -R a+rX "$VENV"
    echo "$venv_key" >"$VENV/.pypasta-deps"
fi
