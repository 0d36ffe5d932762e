import os, time, subprocess, json
from helpers import env
from helpers.proc import wait_until

def test_scratch(topology):
    t = topology
    tr = os.path.join(t.workdir, "trace2.txt")
    r = t.hostns.run(user="rootless", cmd=["strace", "-f", "-o", tr, "-e", "trace=openat,pivot_root", env.python_for("rootless"), "-m", "pasta", "--config-net", "-d", "-l", "/dev/null", "-t", "auto", "--", "sh", "-c", "socat TCP-LISTEN:7777 - & sleep 2.5; kill %1"], timeout=20, check=False)
    os.system(f"cp {tr} /tmp/scratch/trace3.txt")
    assert 0
