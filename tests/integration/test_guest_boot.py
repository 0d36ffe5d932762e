"""The QEMU test guest itself (tests/helpers/guest.py), before any network is attached to it.

One boot with no network device: commands through the serial channel keep their exit status and
their output byte for byte (100 KiB of random bytes included, and text that looks like the
channel's markers); background commands return at once and keep running (a server started, used,
then collected: busybox nc for TCP, guestnet for UDP); no command line is lost while orphans end
in the guest; a command the guest kills at its limit leaves the channel usable; poweroff makes
QEMU exit 0 within a bounded time. The guest is TCG on these machines: about 2 s to the banner
and 10 s for the whole test on an idle machine.

A machine without the guest (tests/install-deps.sh step 8) fails here, naming that script.
"""

from __future__ import annotations

import hashlib
import time

import pytest

from helpers import guest as guest_mod
from helpers.guest import Guest, GuestTimeout
from helpers.proc import wait_until

BIG_BYTES = 100 * 1024


@pytest.fixture
def guest(tmp_path):
    try:
        guest_mod.check_setup()
    except AssertionError as exc:
        pytest.fail(str(exc), pytrace=False)
    with Guest(str(tmp_path)) as g:
        g.start()
        g.wait_ready()
        print(f"guest boot: {g.boot_s:.2f} s from QEMU's start to the channel banner "
              f"(guest uptime {g.ready_uptime_s} s)")
        yield g


def test_guest_missing_assets_fail_naming_install_deps(monkeypatch, tmp_path):
    monkeypatch.setattr(guest_mod, "KERNEL", str(tmp_path / "vmlinux"))
    with pytest.raises(AssertionError, match=r"(?s)vmlinux missing.*tests/install-deps\.sh"):
        guest_mod.check_setup()
    with pytest.raises(AssertionError, match="install-deps"):
        Guest(str(tmp_path)).start()


def test_guest_channel_runs_commands_and_powers_off(guest):
    # Exit status and both output streams.
    assert guest.run("exit 3") == (3, "")
    assert guest.run("echo out; echo err >&2; false") == (1, "out\nerr\n")
    assert guest.check("uname -r; ls /sys/class/net").split() == [
        guest.check("uname -r").strip(), "lo"]
    # Multi-line commands and quoting survive the encoding.
    assert guest.check("cat <<'EOF'\n$HOME 'quoted' \"double\"\nEOF\nprintf '%s' \\\\") == \
        "$HOME 'quoted' \"double\"\n\\"

    # Output that looks like the channel's markers, without a final newline, is just output.
    fake = "__END__ 0 0\n__OUT__ 00 5\n__PYPASTA_GUEST_READY__ 1\nno newline"
    assert guest.check(f"printf '%s' '{fake}'") == fake
    assert guest.run("echo next") == (0, "next\n")

    # 100 KiB of random bytes, exactly, checked against the guest's own digest.
    rc, data = guest.run_bytes(
        f"head -c {BIG_BYTES} /dev/urandom >/tmp/big && cat /tmp/big", timeout=60)
    assert rc == 0 and len(data) == BIG_BYTES
    assert guest.check("sha256sum /tmp/big").split()[0] == hashlib.sha256(data).hexdigest()

    # Background commands return at once, redirected or not, and keep running.
    t0 = time.monotonic()
    guest.check("sleep 600 & echo $! >/tmp/sleeper1.pid", timeout=20)
    guest.check("sleep 600 >/dev/null 2>&1 & echo $! >/tmp/sleeper2.pid", timeout=20)
    assert time.monotonic() - t0 < 20
    guest.check("kill -0 $(cat /tmp/sleeper1.pid) && kill -0 $(cat /tmp/sleeper2.pid)")
    # Start a server, act, collect: nc on lo.
    guest.check("nc -l -p 5000 >/tmp/recv 2>/tmp/nc.err & echo $! >/tmp/nc.pid")
    wait_until(lambda: ":5000 " in guest.check("netstat -ltn"), 20, "nc listening in the guest")
    guest.check("echo hello over lo | nc 127.0.0.1 5000", timeout=20)
    wait_until(lambda: guest.check("cat /tmp/recv") == "hello over lo\n", 20,
               "the background nc's output")
    # UDP, which busybox's nc lacks: guestnet (tests/helpers/guestnet.c).
    guest.check("guestnet udp-echo ::1 7000 >/tmp/echo.log 2>&1 &")
    wait_until(lambda: guest.check("cat /tmp/echo.log") == "ready\n", 20, "guestnet udp-echo")
    assert guest.check("guestnet udp-ping ::1 7000 20 1400", timeout=20) == "sent 20 ok 20\n"

    # Orphans ending while the guest's reader waits mid-line lose no command (busybox ash's
    # `read` drops a partly read line when SIGCHLD interrupts it: guest_init.sh keeps the reader
    # out of PID 1, which inherits the orphans).
    guest.check("sh -c 'while :; do (sleep 0.01 &); sleep 0.003; done' >/dev/null 2>&1 &"
                " echo $! >/tmp/churn.pid")
    guest.send_pause_s = 0.03
    for i in range(30):
        assert guest.run(f"echo {i}", timeout=10) == (0, f"{i}\n")
    guest.send_pause_s = 0.0
    guest.check("kill $(cat /tmp/churn.pid)")

    # A command the guest kills at its limit raises, and the channel goes on.
    with pytest.raises(GuestTimeout, match="killed"):
        guest.run("echo started; sleep 60", timeout=2)
    assert guest.run("echo alive") == (0, "alive\n")

    t0 = time.monotonic()
    assert guest.poweroff(timeout=30) == 0
    print(f"guest poweroff: {time.monotonic() - t0:.2f} s")
    assert guest.proc.returncode == 0
