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
#   6. /var/cache/pypasta-test/trixie: a Debian 13 root file system with Podman 5 and RootlessKit 2
#      for the tests that drive them (built once with mmdebstrap, a few minutes; cached after that).
#   7. /opt/passt-2026: the reference passt, pasta and pesto of release 2026_07_16, built from
#      ../shared/reference by ../shared/tools/build-passt.sh (about a minute; skipped once built). The
#      pesto-protocol unit tests run the real pesto against their own server.
#   8. /var/cache/pypasta-test/guest: the Linux guest that the passt-mode tests boot under QEMU
#      (tests/helpers/guest.py): Debian 12's kernel (apt-get download, never installed) and an
#      initramfs of busybox-static, the virtio-net modules, tests/helpers/guest_init.sh as /init
#      and guestnet.c (gcc -static: DHCPv6 and UDP, which busybox lacks).
#      About 10 s the first time (a 70 MB download); rebuilt only when its inputs change.
set -euo pipefail
umask 022

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TEST_USER=pypasta-test
VENV=/opt/pypasta-venv
STAMPS=/var/lib/pypasta-test
PYTHON=${PYTHON:-python3}

# busybox-static rather than busybox (they conflict): the same applets, and the static binary is
# what the locally built container image for the Podman tests is made of (and the test guest's,
# step 8). qemu-system-x86 (QEMU 7.2) and cpio are for that guest; like every package here they are
# installed without recommends (no GUI, OVMF or block drivers: qemu-system-data, seabios and
# ipxe-qemu come as dependencies).
APT_PKGS=(iproute2 busybox-static socat iputils-ping isc-dhcp-client tcpdump tmux iperf3 curl
          dnsmasq-base procps psmisc passt slirp4netns python3-venv util-linux
          podman crun conmon uidmap rootlesskit containernetworking-plugins iptables dhcpcd-base
          mmdebstrap gcc make libc6-dev qemu-system-x86 cpio)

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

# --- 6. The Debian 13 root file system for Podman 5 and RootlessKit 2 ------------------------------
# Debian 12 ships Podman 4.3 and RootlessKit 1.1. tests/integration/test_podman5.py and
# test_rootlesskit2.py run Debian 13's inside private mount and PID namespaces over this tree
# (tests/helpers/trixie.py; podman5.md section 5). Inside: the test user with the host's name, uid
# and gid, an /etc/subuid and /etc/subgid range clear of every range the host hands out,
# policy-rc.d (package scripts start no daemons) and /opt/pypasta-venv with pypasta's runtime
# dependencies. pypasta itself is NOT in the tree: the tests bind the checkout's sources in.
# Packages added to TRIXIE_PKGS later are apt-get installed into the cached tree. The downloads
# (mmdebstrap, apt, pip) are the only steps that use the network; each runs in a throw-away mount
# namespace, so nothing is mounted on this machine's mount table.
TRIXIE=/var/cache/pypasta-test/trixie
TRIXIE_MIRROR=http://deb.debian.org/debian
TRIXIE_PKGS=(podman crun conmon netavark aardvark-dns catatonit uidmap fuse-overlayfs iptables nftables
             rootlesskit slirp4netns passt busybox-static socat iputils-ping iproute2 procps python3
             python3-venv ca-certificates passwd util-linux
             strace tcpdump jq)          # the last three only for debugging by hand
TRIXIE_SUB_COUNT=65536

# Run a command chrooted into the tree with the machine's network, resolver and CA bundle (the
# machine may reach registries through a proxy with its own CA), /dev and /proc mounted in a
# private mount namespace that ends with the command.
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
in_tree_online() {
    unshare --mount --propagation private -- sh -euc '
        t=$1; ca=$2; shift 2
        mount --rbind /dev "$t/dev"
        mount -t proc proc "$t/proc"
        mount --bind /etc/resolv.conf "$t/etc/resolv.conf"
        if [ -f "$ca" ] && [ -f "$t$ca" ]; then mount --bind "$ca" "$t$ca"; fi
        exec chroot "$t" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
            DEBIAN_FRONTEND=noninteractive PIP_CERT="$ca" SSL_CERT_FILE="$ca" "$@"' \
        sh "$TRIXIE" "$CA_BUNDLE" "$@"
}

tu_uid=$(id -u "$TEST_USER")
tu_gid=$(id -g "$TEST_USER")
# The tree's range starts past the end of every range in the host's files, on a 64 Ki boundary.
sub_start=$(awk -F: -v n="$TRIXIE_SUB_COUNT" 'BEGIN { m = 100000 + n }
    NF >= 3 && $2 ~ /^[0-9]+$/ && $3 ~ /^[0-9]+$/ { if ($2 + $3 > m) m = $2 + $3 }
    END { printf "%d\n", int((m + n - 1) / n) * n }' /etc/subuid /etc/subgid 2>/dev/null)
trixie_key=$( { echo "format 1"; echo "$TRIXIE_MIRROR"; printf '%s\n' "${TRIXIE_PKGS[@]}";
                echo "$TEST_USER $tu_uid $tu_gid $sub_start"; echo "$venv_deps"; } \
              | sha256sum | cut -d' ' -f1)
if [ "$(cat "$STAMPS/trixie.stamp" 2>/dev/null)" != "$trixie_key" ] \
   || [ ! -x "$TRIXIE/usr/bin/podman" ] || [ ! -x "$TRIXIE/opt/pypasta-venv/bin/python3" ]; then
    rm -f "$STAMPS/trixie.stamp"
    if [ ! -x "$TRIXIE/usr/bin/podman" ]; then
        # Built beside its final place and moved there whole: an interrupted build leaves no
        # half tree behind for the next run to trust.
        rm -rf "$TRIXIE.new"
        mkdir -p "$(dirname "$TRIXIE")"
        quiet unshare --mount --propagation private -- \
            mmdebstrap --quiet --mode=root --variant=apt --format=directory \
            --include="$(IFS=,; echo "${TRIXIE_PKGS[*]}")" trixie "$TRIXIE.new" "$TRIXIE_MIRROR"
        rm -rf "$TRIXIE"
        mv "$TRIXIE.new" "$TRIXIE"
    fi
    printf '#!/bin/sh\nexit 101\n' >"$TRIXIE/usr/sbin/policy-rc.d"
    chmod 0755 "$TRIXIE/usr/sbin/policy-rc.d"
    # A regular file the tests bind their resolv.conf over (and this step the machine's).
    if [ -L "$TRIXIE/etc/resolv.conf" ] || [ ! -f "$TRIXIE/etc/resolv.conf" ]; then
        rm -f "$TRIXIE/etc/resolv.conf"
        : >"$TRIXIE/etc/resolv.conf"
    fi
    # Packages added to TRIXIE_PKGS since the tree was built.
    tmissing=()
    tinstalled=$(chroot "$TRIXIE" dpkg-query -W -f='${Package} ${Status}\n' "${TRIXIE_PKGS[@]}" \
                 2>/dev/null || true)
    for pkg in "${TRIXIE_PKGS[@]}"; do
        case $'\n'"$tinstalled"$'\n' in
            *$'\n'"$pkg install ok installed"$'\n'*) ;;
            *) tmissing+=("$pkg") ;;
        esac
    done
    if [ ${#tmissing[@]} -gt 0 ]; then
        quiet in_tree_online apt-get -qq update
        quiet in_tree_online apt-get install -y -qq --no-install-recommends "${tmissing[@]}"
        quiet in_tree_online apt-get clean
    fi
    # The test user, with the host's uid and gid (files in shared directories keep one owner).
    if [ "$(chroot "$TRIXIE" id -u "$TEST_USER" 2>/dev/null)" != "$tu_uid" ] \
       || [ "$(chroot "$TRIXIE" id -g "$TEST_USER" 2>/dev/null)" != "$tu_gid" ]; then
        chroot "$TRIXIE" userdel --remove "$TEST_USER" >/dev/null 2>&1 || true
        chroot "$TRIXIE" groupdel "$TEST_USER" >/dev/null 2>&1 || true
        quiet chroot "$TRIXIE" groupadd --gid "$tu_gid" "$TEST_USER"
        quiet chroot "$TRIXIE" useradd --uid "$tu_uid" --gid "$tu_gid" --create-home \
            --shell /bin/sh --comment "pypasta rootless tests" "$TEST_USER"
    fi
    for f in subuid subgid; do
        { grep -v "^$TEST_USER:" "$TRIXIE/etc/$f" 2>/dev/null || true
          echo "$TEST_USER:$sub_start:$TRIXIE_SUB_COUNT"; } >"$TRIXIE/etc/$f.new"
        mv "$TRIXIE/etc/$f.new" "$TRIXIE/etc/$f"
        chmod 0644 "$TRIXIE/etc/$f"
    done
    # pypasta's runtime dependencies for the tree's python3 (as step 5 for the machine's).
    tvenv_key=$(printf '%s\n' "$venv_deps" "$(readlink "$TRIXIE/usr/bin/python3")" \
                | sha256sum | cut -d' ' -f1)
    if [ "$(cat "$TRIXIE/opt/pypasta-venv/.pypasta-deps" 2>/dev/null)" != "$tvenv_key" ]; then
        rm -rf "$TRIXIE/opt/pypasta-venv"
        quiet in_tree_online /usr/bin/python3 -m venv /opt/pypasta-venv
        mapfile -t deps_arr <<<"$venv_deps"
        quiet in_tree_online /opt/pypasta-venv/bin/python3 -m pip install -q \
            --disable-pip-version-check --no-cache-dir "${deps_arr[@]}"
        chmod -R a+rX "$TRIXIE/opt/pypasta-venv"
        echo "$tvenv_key" >"$TRIXIE/opt/pypasta-venv/.pypasta-deps"
    fi
    echo "$trixie_key" >"$STAMPS/trixie.stamp"
fi

# --- 7. The reference passt 2026 (passt, pasta, pesto) ----------------------------------------------
# The binaries are the stamp: build-passt.sh is a no-op once all three are there.
PASST2026=/opt/passt-2026
BUILD_PASST=$REPO/../shared/tools/build-passt.sh
if [ ! -x "$PASST2026/passt" ] || [ ! -x "$PASST2026/pasta" ] || [ ! -x "$PASST2026/pesto" ]; then
    [ -f "$BUILD_PASST" ] \
        || die "missing $BUILD_PASST: it builds the reference passt, pasta and pesto into $PASST2026"
    quiet bash "$BUILD_PASST" "$PASST2026"
fi

# --- 8. The test guest for passt mode: a kernel and an initramfs for QEMU -------------------------
# tests/helpers/guest.py boots these under qemu-system-x86 (passt-mode.md section 8). The kernel
# is the versioned linux-image-6.1.0-N-amd64 that linux-image-amd64 depends on: fetched with
# `apt-get download` and unpacked with `dpkg-deb -x` into a scratch directory, from which only
# boot/vmlinuz-* and the virtio-net modules are kept (a .ko.xz decompressed, so loading never
# depends on the kernel's or busybox's decompression) in $GUEST/modules. Nothing is installed;
# /boot is untouched. $GUEST/vmlinux is the same kernel decompressed from vmlinuz (an ELF with a
# PVH entry, CONFIG_PVH): QEMU starts it directly, which saves the 3 s that TCG takes to unpack
# the xz payload at every boot. That part is keyed on the module list only: the kernel stays the
# one linux-image-amd64 named at the first build (delete $GUEST to take a newer one);
# $GUEST/kernel-package says which it is.
# The initramfs (a newc cpio, uncompressed: TCG decompresses slowly) holds the static busybox with a
# link for each applet, those modules with lib/modules/order (the dependency order /init loads them
# in), tests/helpers/guest_init.sh as /init, guest_udhcpc.sh as udhcpc's script and /dev/console,
# and what busybox 1.35 lacks (no udhcpc6, no `nc -u`): guestnet.c built with `gcc -static` (a
# DHCPv6 client, UDP echo server and client) with guest_udhcpc6.sh as its DHCPv6 script.
# Its stamp covers those files, busybox's and gcc's versions and the kernel; $GUEST/sources.sha256
# lists the checkout files it was built from, so guest.py can tell a stale initramfs from a
# current one.
# Every file is built beside its place and renamed there: an interrupted run leaves none half made.
GUEST=/var/cache/pypasta-test/guest
GUEST_SRC=(tests/helpers/guest_init.sh tests/helpers/guest_udhcpc.sh tests/helpers/guest_udhcpc6.sh
           tests/helpers/guestnet.c)
GUESTNET_CFLAGS=(-static -s -O2 -Wall -Wextra -Werror)
GUEST_MODULES=(virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci
               failover net_failover virtio_net)
kernel_key=$(printf 'format 2\n%s\n' "${GUEST_MODULES[@]}" | sha256sum | cut -d' ' -f1)
guest_kernel_ok() {
    [ "$(cat "$GUEST/kernel.stamp" 2>/dev/null)" = "$kernel_key" ] && [ -s "$GUEST/vmlinuz" ] \
        && [ -s "$GUEST/vmlinux" ] && [ -s "$GUEST/kernel-package" ]
}
# The versioned package behind the linux-image-amd64 metapackage (empty if apt does not know it).
kernel_package() {
    { apt-cache depends linux-image-amd64 2>/dev/null || true; } \
        | awk '!found && $1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; found = 1 }'
}
# bzImage = setup code + decompressor + the compressed vmlinux (xz in Debian's; gzip handled
# too): the payload starts at the first magic that unpacks to an ELF.
EXTRACT_VMLINUX='
import lzma, sys, zlib
data = open(sys.argv[1], "rb").read()
def unpack(magic, fn):
    at = data.find(magic)
    while at >= 0:
        try:
            out = fn(data[at:])
            if out[:4] == b"\x7fELF":
                return out
        except (lzma.LZMAError, zlib.error):
            pass
        at = data.find(magic, at + 1)
    return None
elf = (unpack(b"\xfd7zXZ\x00", lambda b: lzma.LZMADecompressor(lzma.FORMAT_XZ).decompress(b))
       or unpack(b"\x1f\x8b\x08", lambda b: zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(b)))
if elf is None:
    sys.exit(f"no xz or gzip payload that unpacks to an ELF in {sys.argv[1]}")
open(sys.argv[2], "wb").write(elf)
'
if ! guest_kernel_ok; then
    rm -f "$GUEST/kernel.stamp"
    mkdir -p "$GUEST"
    kpkg=$(kernel_package)
    if [ -z "$kpkg" ]; then
        quiet apt-get -o DPkg::Lock::Timeout=600 update -qq
        kpkg=$(kernel_package)
    fi
    [ -n "$kpkg" ] || die "apt knows no linux-image-6.1.0-N-amd64 behind linux-image-amd64"
    kscratch=$(mktemp -d /var/tmp/pypasta-guest-kernel.XXXXXX)
    trap 'rm -f "$LOG"; rm -rf "$kscratch"' EXIT
    (cd "$kscratch" && quiet apt-get download -q "$kpkg")
    debs=("$kscratch"/"$kpkg"_*.deb)
    [ -f "${debs[0]}" ] || die "apt-get download $kpkg left no .deb in $kscratch"
    quiet dpkg-deb -x "${debs[0]}" "$kscratch/root"
    kver=$(dpkg-deb -f "${debs[0]}" Version)
    vmlinuz=("$kscratch"/root/boot/vmlinuz-*)
    [ -f "${vmlinuz[0]}" ] || die "$kpkg has no boot/vmlinuz-*"
    grep -qx 'CONFIG_PVH=y' "$kscratch"/root/boot/config-* \
        || die "$kpkg is built without CONFIG_PVH: QEMU cannot start its vmlinux directly"
    rm -rf "$GUEST/modules.new"
    mkdir -p "$GUEST/modules.new"
    for m in "${GUEST_MODULES[@]}"; do
        ko=$(find "$kscratch/root/lib/modules" \( -name "$m.ko" -o -name "$m.ko.xz" \) -print -quit)
        case $ko in
            *.ko) cp "$ko" "$GUEST/modules.new/$m.ko" ;;
            *.ko.xz) quiet sh -c 'busybox xzcat "$1" >"$2"' sh "$ko" "$GUEST/modules.new/$m.ko" ;;
            *) die "$kpkg has no module $m (.ko or .ko.xz)" ;;
        esac
    done
    quiet /usr/bin/python3 -c "$EXTRACT_VMLINUX" "${vmlinuz[0]}" "$GUEST/vmlinux.new"
    cp "${vmlinuz[0]}" "$GUEST/vmlinuz.new"
    rm -rf "$GUEST/modules"
    mv "$GUEST/modules.new" "$GUEST/modules"
    mv "$GUEST/vmlinuz.new" "$GUEST/vmlinuz"
    mv "$GUEST/vmlinux.new" "$GUEST/vmlinux"
    echo "$kpkg $kver" >"$GUEST/kernel-package"
    echo "$kernel_key" >"$GUEST/kernel.stamp"
    rm -rf "$kscratch"
    trap 'rm -f "$LOG"' EXIT
fi

initramfs_key=$( { echo "format 1"; cat "$GUEST/kernel-package" "$GUEST/kernel.stamp";
                   dpkg-query -W -f='${Version}\n' busybox-static;
                   gcc -dumpfullversion; echo "${GUESTNET_CFLAGS[*]}";
                   (cd "$REPO" && sha256sum "${GUEST_SRC[@]}"); } | sha256sum | cut -d' ' -f1)
if [ "$(cat "$GUEST/initramfs.stamp" 2>/dev/null)" != "$initramfs_key" ] \
   || [ ! -s "$GUEST/initramfs.cpio" ] || [ ! -s "$GUEST/sources.sha256" ]; then
    rm -f "$GUEST/initramfs.stamp"
    [ -x /bin/busybox ] || die "/bin/busybox is missing (package busybox-static)"
    iscratch=$(mktemp -d /var/tmp/pypasta-guest-initramfs.XXXXXX)
    trap 'rm -f "$LOG"; rm -rf "$iscratch"' EXIT
    t=$iscratch/root
    mkdir -p "$t"/{bin,sbin,usr/bin,usr/sbin,etc/udhcpc,usr/share/udhcpc,lib/modules,dev,proc,sys}
    mkdir -p "$t"/{tmp,run,root}
    cp /bin/busybox "$t/bin/busybox"
    for applet in $(/bin/busybox --list-full); do
        [ -e "$t/$applet" ] || ln -s /bin/busybox "$t/$applet"
    done
    cp "$GUEST"/modules/*.ko "$t/lib/modules/"
    printf '%s\n' "${GUEST_MODULES[@]}" >"$t/lib/modules/order"
    install -m 0755 "$REPO/tests/helpers/guest_init.sh" "$t/init"
    install -m 0755 "$REPO/tests/helpers/guest_udhcpc.sh" "$t/usr/share/udhcpc/default.script"
    ln -s /usr/share/udhcpc/default.script "$t/etc/udhcpc/default.script"
    install -m 0755 "$REPO/tests/helpers/guest_udhcpc6.sh" "$t/usr/share/udhcpc/default6.script"
    quiet gcc "${GUESTNET_CFLAGS[@]}" -o "$t/usr/bin/guestnet" "$REPO/tests/helpers/guestnet.c"
    : >"$t/etc/resolv.conf"
    echo "root:x:0:0:root:/root:/bin/sh" >"$t/etc/passwd"
    echo "root:x:0:" >"$t/etc/group"
    mknod -m 0600 "$t/dev/console" c 5 1
    (cd "$t" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) \
        >"$GUEST/initramfs.cpio.new" || die "cpio failed to archive $t"
    (cd "$REPO" && sha256sum "${GUEST_SRC[@]}") >"$GUEST/sources.sha256.new"
    mv "$GUEST/initramfs.cpio.new" "$GUEST/initramfs.cpio"
    mv "$GUEST/sources.sha256.new" "$GUEST/sources.sha256"
    echo "$initramfs_key" >"$GUEST/initramfs.stamp"
    rm -rf "$iscratch"
    trap 'rm -f "$LOG"' EXIT
fi
