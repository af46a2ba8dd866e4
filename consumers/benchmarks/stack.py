"""The ledger's processes for a benchmark, run as an operator runs them: `ledger consume`,
`ledger relay`, `ledger project` and `ledger psp-simulator`, each a subprocess of this
Python, against services that already run (a benchmark starts no Kafka and no PostgreSQL).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from consumers.settings import Settings

# The repository's root: a bench's child process imports this checkout's code.
ROOT = Path(__file__).resolve().parents[2]


def child_env() -> dict[str, str]:
    """The environment of a bench's child process: ours, with this checkout importable."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}

PROCESSES = ("consume", "relay", "project", "psp-simulator")
# A process that does not stop this long after SIGTERM is killed (and reported).
STOP_DEADLINE_S = 30
# Linux reports peak resident memory as VmHWM in /proc/PID/status, in kB.
PEAK_RSS_FIELD = "VmHWM:"


class StackFailed(Exception):
    """A ledger process of the benchmark exited while it should run."""


@dataclass
class Stack:
    settings: Settings
    logs: Path
    # PSP answers stamped this long after the command (event time; the simulate default).
    psp_result_delay_s: int = 2
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self) -> None:
        common = ["--bootstrap-servers", ",".join(self.settings.bootstrap_servers),
                  "--topic-prefix", self.settings.topic_prefix]
        store = ["--store", self.settings.store_url]
        argv = {
            "consume": ["consume", *common, *store, "--group-id", self.settings.group_id,
                        "--metrics-port", "0"],
            "relay": ["relay", *common, *store, "--metrics-port", "0"],
            "project": ["project", *store, "--metrics-port", "0"],
            "psp-simulator": ["psp-simulator", *common,
                              "--group-id", psp_group_id(self.settings),
                              "--result-delay-s", str(self.psp_result_delay_s)],
        }
        env = child_env()
        self.logs.mkdir(parents=True, exist_ok=True)
        for name in PROCESSES:
            with (self.logs / f"{name}.log").open("wb") as log:  # the child keeps its copy
                self.processes[name] = subprocess.Popen(
                    [sys.executable, "-m", "consumers.cli", *argv[name]], env=env,
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                )

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                tail = (self.logs / f"{name}.log").read_text(errors="replace")[-2000:]
                raise StackFailed(f"ledger {name} exited {process.returncode}:\n{tail}")

    def peak_rss_kb(self, name: str) -> int:
        """The process's peak resident memory so far (0 where /proc does not say)."""
        status = Path(f"/proc/{self.processes[name].pid}/status")
        try:
            for line in status.read_text().splitlines():
                if line.startswith(PEAK_RSS_FIELD):
                    return int(line.split()[1])
        except OSError:
            return 0
        return 0

    def stop(self) -> dict[str, int]:
        """SIGTERM to every process; their exit codes (killed after STOP_DEADLINE_S)."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        codes: dict[str, int] = {}
        for name, process in self.processes.items():
            try:
                codes[name] = process.wait(timeout=STOP_DEADLINE_S)
            except subprocess.TimeoutExpired:
                process.kill()
                codes[name] = process.wait()
        return codes


def psp_group_id(settings: Settings) -> str:
    """The PSP simulator's own group: it must never share partitions with the ledger."""
    return f"{settings.group_id}-psp"
