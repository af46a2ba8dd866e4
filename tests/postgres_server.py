"""A PostgreSQL server of a test's own, from the server binaries `scripts/services` installs.

The shared server on 5432 is used by every other test and is never restarted by one; a test
that must restart a server (crash-like or cleanly) starts one here: initdb into a fresh
directory, a free port on the loopback only, the role and database the ledger uses
(`scripts/services` provisions the same: role evledger that may create databases, database
evledger, the finance reader role), started and stopped with `pg_ctl -w`.

The server refuses to run as root, so as root every server command runs as the `postgres`
user, and the cluster lives in a directory that user owns under /var/tmp: pytest's temporary
directories (like `mktemp -d`) are 0700 and so out of that user's reach.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.ports import free_port

ROLE = "evledger"
PASSWORD = "evledger"
DATABASE = "evledger"
FINANCE_READER_ROLE = "evledger_finance_reader"
SERVER_USER = "postgres"
# initdb takes ~2 s, a start or restart ~1 s on a quiet machine; minutes on a stuck disk.
PG_CTL_WAIT_S = 120
# A readable place the postgres user can reach (pytest's own temp dirs are 0700).
ROOT_CLUSTER_PARENT = Path("/var/tmp")
# As scripts/services (TCP on the loopback only, no fsync: the OS does not crash here) but
# synchronous_commit on: with it off, as on the shared cluster, a crash-like restart loses
# the last transactions the server had already acknowledged (seen: the ledger's log and
# positions went back 9 notifications), a loss no process can ride through.
SERVER_SETTINGS = """
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = ''
max_connections = 100
fsync = off
synchronous_commit = on
full_page_writes = off
"""
PROVISION_SQL = (
    f"CREATE ROLE {ROLE} LOGIN CREATEDB PASSWORD '{PASSWORD}'",
    f"CREATE DATABASE {DATABASE} OWNER {ROLE}",
    f"CREATE ROLE {FINANCE_READER_ROLE} NOLOGIN",
    f"GRANT {FINANCE_READER_ROLE} TO {ROLE}",
)


def server_bin_dir() -> Path:
    """The newest installed server's bin directory (Debian's /usr/lib/postgresql/N/bin),
    else the one on PATH; the test is skipped, with the reason, where there is none."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    on_path = shutil.which("initdb")
    if on_path is not None:
        candidates.insert(0, Path(on_path).parent)
    for directory in reversed(candidates):
        if (directory / "initdb").is_file() and (directory / "pg_ctl").is_file():
            return directory
    pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) in /usr/lib/postgresql/*/bin"
                " or on PATH: `scripts/services up` installs them")


def _as_root() -> bool:
    return os.geteuid() == 0


@dataclass(frozen=True, slots=True)
class PostgresServer:
    """One cluster: started, restarted or stopped with `pg_ctl -w`, on the same port."""

    bin_dir: Path
    data: Path
    log: Path
    port: int

    @property
    def url(self) -> str:
        """The ledger's database, as the ledger's role."""
        return f"postgresql://{ROLE}:{PASSWORD}@127.0.0.1:{self.port}/{DATABASE}"

    def start(self) -> None:
        self._pg_ctl("start", "-l", str(self.log))

    def stop(self, mode: str) -> None:
        """`mode`: smart, fast (backends told to exit, a checkpoint) or immediate (no
        shutdown: recovery at the next start, as after a crash)."""
        self._pg_ctl("stop", "-m", mode)

    def restart(self, mode: str) -> None:
        self._pg_ctl("restart", "-m", mode, "-l", str(self.log))

    def running(self) -> bool:
        return self._run(["pg_ctl", "status", "-D", str(self.data)]).returncode == 0

    def _pg_ctl(self, action: str, *options: str) -> None:
        done = self._run(["pg_ctl", action, "-D", str(self.data), "-w", "-t",
                          str(PG_CTL_WAIT_S), *options])
        if done.returncode != 0:
            raise AssertionError(f"pg_ctl {action} failed ({done.returncode}): {done.stdout}\n"
                                 + self.log.read_text(errors="replace")[-3000:])

    def _run(self, command: list[str]) -> subprocess.CompletedProcess[str]:
        return _server_command(self.bin_dir, command)


def _server_command(bin_dir: Path, command: list[str]) -> subprocess.CompletedProcess[str]:
    """A server binary, as the postgres user when root; from / (its cwd must be reachable).
    The server inherits no stdin/stdout of the test: `pg_ctl -l` writes the log."""
    argv = [str(bin_dir / command[0]), *command[1:]]
    if _as_root():
        argv = ["runuser", "-u", SERVER_USER, "--", *argv]
    return subprocess.run(argv, cwd="/", stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=PG_CTL_WAIT_S * 2, check=False)


@contextmanager
def own_postgres() -> Iterator[PostgresServer]:
    """A fresh cluster on a free port with the ledger's role and database; stopped
    (immediate: nothing in it is kept) and removed afterwards."""
    bin_dir = server_bin_dir()
    if _as_root():
        home = Path(tempfile.mkdtemp(prefix="evledger-test-postgres-", dir=ROOT_CLUSTER_PARENT))
        shutil.chown(home, SERVER_USER, SERVER_USER)
    else:
        home = Path(tempfile.mkdtemp(prefix="evledger-test-postgres-"))
    server = PostgresServer(bin_dir, home / "data", home / "postgres.log", free_port())
    try:
        init = _server_command(bin_dir, ["initdb", "-D", str(server.data), "-U", SERVER_USER,
                                         "--auth=trust", "--encoding=UTF8", "--no-locale"])
        assert init.returncode == 0, f"initdb failed ({init.returncode}):\n{init.stdout}" \
                                     f"\n{init.stderr}"
        with (server.data / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write(SERVER_SETTINGS.format(port=server.port))
        server.start()
        with psycopg.connect(host="127.0.0.1", port=server.port, user=SERVER_USER,
                             dbname="postgres", autocommit=True) as admin:
            for statement in PROVISION_SQL:
                admin.execute(statement)
        yield server
    finally:
        if server.running():
            server.stop("immediate")
        shutil.rmtree(home, ignore_errors=True)
