"""Process supervision for `edgespec sim`: start programs inside a namespace, each in its own
process group (so a kill reaches everything it spawned), wait for servers' ready files, run a
client while watching that no server died, and stop everything on any exit. Also the signal
guard that turns SIGTERM/SIGHUP into KeyboardInterrupt so teardown runs. Knows no models.
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from edgespec.sim.netns import deferred_signals, exec_argv

POLL_S = 0.1
STOP_GRACE_S = 10.0
CHILD_ENV = {"HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TOKENIZERS_PARALLELISM": "false",
             "PYTHONUNBUFFERED": "1"}


class ServiceDied(RuntimeError):
    """A server of the lab exited (or never became ready)."""


@dataclass
class Proc:
    """One supervised program: its role name, process, log file and whether it must stay up."""

    name: str
    namespace: str
    popen: subprocess.Popen
    log: pathlib.Path
    service: bool
    ready: pathlib.Path | None = None   # where a server writes its HOST:PORT once serving

    def tail(self) -> str:
        """The last non-empty log line (where a crashed server says why)."""
        lines = [ln for ln in self.log.read_text(errors="replace").splitlines() if ln.strip()]
        return lines[-1].strip() if lines else "no output"

    def exit_reason(self) -> str:
        code = self.popen.returncode
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
        return f"{self.name} ({self.namespace}) {how}: {self.tail()}"


@dataclass
class Supervisor:
    """The programs of one lab; `close()` (or leaving the `with`) stops them all."""

    workdir: pathlib.Path
    procs: list[Proc] = field(default_factory=list)

    def spawn(self, name: str, namespace: str, argv: list[str], service: bool = False) -> Proc:
        log = self.workdir / f"{name}.log"
        with log.open("w") as out:
            popen = subprocess.Popen(exec_argv(namespace, argv), stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     env={**os.environ, **CHILD_ENV})
        proc = Proc(name, namespace, popen, log, service)
        self.procs.append(proc)
        return proc

    def launch_service(self, name: str, namespace: str, argv: list[str]) -> Proc:
        """Spawn a server with `--ready-file` (see `wait_ready`); it must stay up from now on."""
        ready = self.workdir / f"{name}.ready"
        ready.unlink(missing_ok=True)
        proc = self.spawn(name, namespace, [*argv, "--ready-file", str(ready)], service=True)
        proc.ready = ready
        return proc

    def wait_ready(self, proc: Proc, timeout_s: float) -> str:
        """Wait for `proc`'s bound address (raise ServiceDied if any server dies first)."""
        deadline = time.monotonic() + timeout_s
        while not proc.ready.exists():
            self.check()
            if time.monotonic() > deadline:
                raise ServiceDied(f"{proc.name} did not serve within {timeout_s:.0f} s (last output: {proc.tail()})")
            time.sleep(POLL_S)
        return proc.ready.read_text().strip()

    def start_service(self, name: str, namespace: str, argv: list[str], timeout_s: float) -> tuple[Proc, str]:
        """`launch_service` + `wait_ready`."""
        proc = self.launch_service(name, namespace, argv)
        return proc, self.wait_ready(proc, timeout_s)

    def check(self) -> None:
        """Raise ServiceDied if any server has exited."""
        for proc in self.procs:
            if proc.service and proc.popen.poll() is not None:
                raise ServiceDied(proc.exit_reason())

    def run_client(self, name: str, namespace: str, argv: list[str], deadline_s: float,
                   on_output: Callable[[str], None] = lambda line: None) -> str:
        """Run a client to completion while the servers stay up; its stdout lines go to
        `on_output` as they come. Raises ServiceDied, TimeoutError or RuntimeError (exit != 0)."""
        proc = self.spawn(name, namespace, argv)
        deadline, seen = time.monotonic() + deadline_s, 0
        try:
            while proc.popen.poll() is None:
                self.check()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name} did not finish within {deadline_s:.0f} s")
                seen = _feed(proc.log, seen, on_output)
                time.sleep(POLL_S)
            _feed(proc.log, seen, on_output)
            self.check()
            if proc.popen.returncode != 0:
                raise RuntimeError(f"{name} failed (exit {proc.popen.returncode}): {proc.tail()}")
            return proc.log.read_text()
        finally:
            self.stop(proc)

    def stop(self, proc: Proc) -> None:
        """SIGTERM the process group (graceful drain), then SIGKILL whatever is left of it: the
        leader if it lingers past STOP_GRACE_S, or any child it leaves behind."""
        if proc in self.procs:
            self.procs.remove(proc)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.popen.pid, sig)
            except ProcessLookupError:
                break  # the whole group is gone
            try:
                proc.popen.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                pass

    def close(self) -> None:
        with deferred_signals():
            for proc in reversed(list(self.procs)):
                self.stop(proc)

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _feed(log: pathlib.Path, seen: int, on_output: Callable[[str], None]) -> int:
    """Pass the complete lines after line `seen` of `log` to `on_output`; returns the new count."""
    lines = log.read_text(errors="replace").split("\n")[:-1]
    for line in lines[seen:]:
        on_output(line)
    return max(seen, len(lines))


@contextmanager
def interrupt_on_signals() -> Iterator[None]:
    """SIGTERM/SIGHUP raise KeyboardInterrupt (as SIGINT does) so `finally` blocks tear down;
    after the first signal, further ones are ignored so teardown is not cut short."""
    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def handler(signum: int, _frame: object) -> None:
        for sig in signals:
            signal.signal(sig, signal.SIG_IGN)
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    try:
        previous = {sig: signal.signal(sig, handler) for sig in signals}
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
