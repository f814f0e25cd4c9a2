"""A Docker engine for tests/deploy/test_compose_up.py: the one already running (DOCKER_HOST or
/var/run/docker.sock), else a `dockerd` this process starts (as root, data and exec roots under a
temp dir, no default bridge) and stops by PID, undoing what it changed on the host: its iptables
chains and rules, the FORWARD policy, `net.ipv4.ip_forward`, its mounts, /etc/docker/key.json.
`host_changes()` says what is still different from before. Not a Docker client library: commands
run through the `docker` / `docker-compose` binaries.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
KEY_JSON = Path("/etc/docker/key.json")
TABLES = ("filter", "nat")


class NoEngine(RuntimeError):
    """No Docker engine can run here (the reason is the message)."""


def run(argv: list[str], env: dict[str, str] | None = None, timeout: float = 600, check: bool = True,
        cwd: Path | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    if check and done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise AssertionError(f"`{' '.join(argv)}` exited {done.returncode}:\n{tail}")
    return done


def _iptables_rules() -> dict[str, set[str]]:
    if shutil.which("iptables") is None:
        return {}
    return {t: set(run(["iptables", "-t", t, "-S"], check=False).stdout.splitlines()) for t in TABLES}


def _mounts_under(root: Path) -> list[str]:
    points = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    return [p for p in points if p.startswith(str(root))]


@dataclass
class DockerEngine:
    """Where the engine is (`env` for the docker binaries) and, if we started it, how to undo that."""

    env: dict[str, str]
    started: subprocess.Popen | None = None
    root: Path | None = None
    log: Path | None = None
    before: dict = field(default_factory=dict)

    @classmethod
    def find_or_start(cls, workdir: Path) -> DockerEngine:
        env = {**os.environ, "DOCKER_BUILDKIT": "0"}  # the classic builder, as docker-compose v1 uses
        if shutil.which("docker") is None:
            raise NoEngine("no docker client (apt-get install docker.io)")
        if run(["docker", "info"], env=env, timeout=30, check=False).returncode == 0:
            return cls(env=env)
        if os.geteuid() != 0 or shutil.which("dockerd") is None:
            raise NoEngine("no running Docker engine, and dockerd cannot be started here (needs root and docker.io)")
        return cls._start(env, workdir)

    @classmethod
    def _start(cls, env: dict[str, str], workdir: Path) -> DockerEngine:
        before = {"ip_forward": IP_FORWARD.read_text(), "iptables": _iptables_rules(), "key_json": KEY_JSON.exists()}
        sock = workdir / "docker.sock"
        log = workdir / "dockerd.log"
        argv = ["dockerd", "--data-root", str(workdir / "data"), "--exec-root", str(workdir / "exec"),
                "--pidfile", str(workdir / "dockerd.pid"), "-H", f"unix://{sock}", "--bridge", "none",
                "--storage-driver", "overlay2"]
        with open(log, "w") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        engine = cls(env={**env, "DOCKER_HOST": f"unix://{sock}"}, started=proc, root=workdir, log=log, before=before)
        deadline = time.monotonic() + 60
        while run(["docker", "info"], env=engine.env, timeout=30, check=False).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                engine.stop()
                tail = " | ".join(log.read_text().strip().splitlines()[-3:])
                raise NoEngine(f"dockerd did not start: {tail}")
            time.sleep(0.5)
        return engine

    def stop(self) -> None:
        """Stop the daemon we started (its containerd child goes with it) and undo its host changes."""
        if self.started is None:
            return
        if self.started.poll() is None:
            self.started.send_signal(signal.SIGTERM)
            try:
                self.started.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.started.kill()
                self.started.wait(timeout=30)
        for point in sorted(_mounts_under(self.root), key=len, reverse=True):
            run(["umount", "-l", point], check=False)
        for tree in ("data", "exec"):  # images and layers (GBs): pytest keeps its temp dirs
            shutil.rmtree(self.root / tree, ignore_errors=True)
        self._restore_iptables()
        IP_FORWARD.write_text(self.before["ip_forward"])
        if not self.before["key_json"]:
            KEY_JSON.unlink(missing_ok=True)

    def _restore_iptables(self) -> None:
        """Delete the rules and chains dockerd added (nothing else), restore chain policies."""
        for table, before in self.before["iptables"].items():
            now = run(["iptables", "-t", table, "-S"], check=False).stdout.splitlines()
            for rule in [r for r in now if r.startswith("-A ") and r not in before]:
                run(["iptables", "-t", table, "-D", *rule[3:].split()], check=False)
            for chain in [r.split()[1] for r in now if r.startswith("-N ") and r not in before]:
                run(["iptables", "-t", table, "-F", chain], check=False)
                run(["iptables", "-t", table, "-X", chain], check=False)
            for policy in [r for r in before if r.startswith("-P ")]:
                run(["iptables", "-t", table, *policy.split()], check=False)

    def host_changes(self) -> list[str]:
        """What still differs from before we started dockerd (empty: all undone)."""
        if self.started is None:
            return []
        changes = []
        if self.started.poll() is None:
            changes.append(f"dockerd pid {self.started.pid} still running")
        if IP_FORWARD.read_text() != self.before["ip_forward"]:
            changes.append("net.ipv4.ip_forward not restored")
        rules = _iptables_rules()
        changes += [f"iptables {t}: {sorted(rules[t] ^ before)}" for t, before in self.before["iptables"].items()
                    if rules.get(t) != before]
        changes += [f"mount {p}" for p in _mounts_under(self.root)]
        if KEY_JSON.exists() and not self.before["key_json"]:
            changes.append(str(KEY_JSON))
        return changes
