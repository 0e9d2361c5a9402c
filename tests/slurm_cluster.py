"""A real single-node SLURM cluster on loopback, for tests (Debian's slurm-wlm and munge, as root)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

SYSTEM_CONF = Path("/etc/slurm/slurm.conf")
CONF = """\
ClusterName=selfdistill
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
SlurmctldPort=16817
SlurmdPort=16818
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MinJobAge=600
DefMemPerCPU=1000
NodeName={host} CPUs={cpus} RealMemory={mem_mb} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def install() -> None:
    """slurm-wlm and munge from Debian if missing (about 15 s)."""
    if shutil.which("slurmctld") and shutil.which("munged"):
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(
        ["apt-get", "install", "-y", "-q", "slurm-wlm", "munge"], env=env, capture_output=True
    ).returncode:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=True, capture_output=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "slurm-wlm", "munge"], env=env, check=True, capture_output=True
        )


class Cluster:
    """Starts munged (if not running), slurmctld and slurmd; `stop()` kills only what it started."""

    def __init__(self, root: Path):
        self.root, self.started = Path(root), []
        self.conf = self.root / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}

    def start(self) -> Cluster:
        for sub in ("state", "spool"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        mem_mb = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20 * 0.8)
        self.conf.write_text(
            CONF.format(host=socket.gethostname().split(".")[0], root=self.root, cpus=os.cpu_count(), mem_mb=mem_mb)
        )
        # Job steps (srun inside a job) find the config only at the default path, not via SLURM_CONF.
        self.linked = None
        if not SYSTEM_CONF.exists():
            SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
            SYSTEM_CONF.symlink_to(self.conf)
            self.linked = SYSTEM_CONF
        if subprocess.run(["pgrep", "-x", "munged"], capture_output=True).returncode:
            Path("/run/munge").mkdir(parents=True, exist_ok=True)
            shutil.chown("/run/munge", "munge", "munge")
            subprocess.run(["runuser", "-u", "munge", "--", "munged"], check=True)
            self.started.append(Path("/run/munge/munged.pid"))
        for daemon in ("slurmctld", "slurmd"):
            subprocess.run([daemon, "-f", str(self.conf)], check=True, env=self.env)
            self.started.append(self.root / f"{daemon}.pid")
        deadline = time.time() + 30
        while time.time() < deadline:
            state = self.run("sinfo", "-h", "-o", "%t").stdout.strip()
            if state in ("idle", "mix", "alloc"):
                return self
            time.sleep(0.3)
        raise RuntimeError(f"SLURM node not idle after 30 s (state {state!r}): see {self.root}/slurmctld.log")

    def run(self, *args):
        return subprocess.run(args, capture_output=True, text=True, env=self.env)

    def stop(self) -> None:
        for pid_file in reversed(self.started):
            try:
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGTERM)
            except (FileNotFoundError, ProcessLookupError, ValueError):
                pass
        self.started.clear()
        if self.linked:
            self.linked.unlink()
