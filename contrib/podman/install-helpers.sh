#!/bin/sh
# Give Podman 5 a `pasta` and a `pesto` that are pypasta, in one step.
#
#   sh install-helpers.sh [--bindir BINDIR] [--conf FILE] HELPER_DIR
#
# Creates HELPER_DIR (if needed) with two symbolic links:
#   HELPER_DIR/pasta -> BINDIR/pypasta         pypasta's pasta-compatible command
#   HELPER_DIR/pesto -> BINDIR/pypasta-pesto   pypasta's pesto (see below)
# BINDIR is where pip put pypasta's console scripts: by default the directory of
# `command -v pypasta`.
#
# Podman finds `pasta` (and, with rootless_port_forwarder = "pasta", `pesto`) in the directories
# of `[engine] helper_binaries_dir` first, then in PATH; HELPER_DIR must therefore come first in
# that list. With --conf FILE the script writes those settings (pypasta.conf beside this script,
# with HELPER_DIR filled in) to FILE, typically a drop-in that Podman reads after its main
# containers.conf:
#   rootless:  ~/.config/containers/containers.conf.d/50-pypasta.conf
#   rootful:   /etc/containers/containers.conf.d/50-pypasta.conf
# Without --conf it prints them, for you to merge into a containers.conf of your own.
#
# `pypasta-pesto` may not be installed yet: the link is made by name all the same (it dangles
# until the console script exists, and Podman only looks for pesto when told to use it).
#
# Re-running the script replaces the links and FILE; nothing else is touched.
set -eu

usage() {
    echo "usage: $0 [--bindir BINDIR] [--conf FILE] HELPER_DIR" >&2
    exit 2
}

bindir=
conf=
while [ $# -gt 0 ]; do
    case $1 in
        --bindir) [ $# -ge 2 ] || usage; bindir=$2; shift 2 ;;
        --bindir=*) bindir=${1#--bindir=}; shift ;;
        --conf) [ $# -ge 2 ] || usage; conf=$2; shift 2 ;;
        --conf=*) conf=${1#--conf=}; shift ;;
        -h|--help) sed -n '2,24s/^# \{0,1\}//p' "$0"; exit 0 ;;
        --) shift; break ;;
        -*) usage ;;
        *) break ;;
    esac
done
[ $# -eq 1 ] || usage
helper_dir=$1

if [ -z "$bindir" ]; then
    pypasta=$(command -v pypasta) || {
        echo "$0: pypasta is not in PATH; install pypasta or give --bindir" >&2
        exit 1
    }
    bindir=$(dirname "$pypasta")
fi
[ -x "$bindir/pypasta" ] || { echo "$0: $bindir/pypasta is not an executable" >&2; exit 1; }
# Absolute targets: the links stay valid wherever HELPER_DIR is.
bindir=$(cd "$bindir" && pwd -P)

mkdir -p "$helper_dir"
helper_dir=$(cd "$helper_dir" && pwd -P)
ln -sfn "$bindir/pypasta" "$helper_dir/pasta"
ln -sfn "$bindir/pypasta-pesto" "$helper_dir/pesto"
if [ ! -e "$bindir/pypasta-pesto" ]; then
    echo "$0: note: $bindir/pypasta-pesto does not exist yet; $helper_dir/pesto points at it" >&2
fi

template=$(dirname "$0")/pypasta.conf
[ -f "$template" ] || { echo "$0: $template is missing" >&2; exit 1; }
# HELPER_DIR goes into a TOML string: refuse what would need escaping.
case $helper_dir in
    *\"*|*\\*) echo "$0: HELPER_DIR may not contain \" or \\" >&2; exit 1 ;;
esac
if [ -n "$conf" ]; then
    mkdir -p "$(dirname "$conf")"
    sed "s|@HELPER_DIR@|$helper_dir|" "$template" >"$conf.tmp.$$"
    chmod 0644 "$conf.tmp.$$"
    mv "$conf.tmp.$$" "$conf"
else
    sed "s|@HELPER_DIR@|$helper_dir|" "$template"
fi
