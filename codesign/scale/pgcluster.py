"""A throwaway PostgreSQL cluster on loopback, for tests, ``tools/chaos.py`` and benches.

``initdb`` and ``pg_ctl`` from the server package (``tools/setup_postgres.sh``
installs it) make a cluster in a temporary folder and start it on a free
port of 127.0.0.1. PostgreSQL refuses to run as root, so as root the
commands run as the ``postgres`` system user. TCP clients log in with a
password (SCRAM), so the tests see a URL with a password, as users would.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

USER = "codesign"
PASSWORD = "pw-Secret-42"
DATABASE = "codesign"
SYSTEM_USER = "postgres"


def find_bindir() -> Path | None:
    """The newest PostgreSQL server binaries here (None if not installed)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: [int(x) for x in Path(p).parts[-3].split(".") if x.isdigit()])
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """One throwaway cluster: start, stop, restart, and its URL.

    Args:
        bindir: PostgreSQL's ``bin`` folder (default: :func:`find_bindir`).

    Raises:
        RuntimeError: If PostgreSQL is not installed.
    """

    def __init__(self, bindir: Path | None = None) -> None:
        found = bindir or find_bindir()
        if found is None:
            raise RuntimeError("PostgreSQL is not installed: run tools/setup_postgres.sh")
        self.bindir = found
        self.root = Path(tempfile.mkdtemp(prefix="codesign-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self._as_root = os.geteuid() == 0

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the cluster's database (with the password)."""
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self._as_root:
            cmd = ["runuser", "-u", SYSTEM_USER, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=120)

    def init(self) -> Cluster:
        """Create the cluster, its user (with a password) and database; start it."""
        if self._as_root:
            shutil.chown(self.root, SYSTEM_USER)
        os.chmod(self.root, 0o755)
        self._run("initdb", "-D", str(self.data), "-U", SYSTEM_USER, "--auth-local=trust",
                  "--auth-host=scram-sha-256", "--no-sync")
        self.start()
        sql = (f"create role {USER} login password '{PASSWORD}'; "
               f"create database {DATABASE} owner {USER};")
        for stmt in sql.split("; "):
            self._run("psql", "-h", str(self.root), "-p", str(self.port), "-U", SYSTEM_USER,
                      "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", stmt.rstrip(";"))
        return self

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} "
                "-c fsync=off -c max_connections=100")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w",
                  "-t", "60", "-o", opts, "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast`` drops the clients; ``immediate`` is a crash)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def restart(self) -> None:
        """Stop and start again on the same port (clients lose their connections)."""
        self.stop()
        self.start()

    def destroy(self) -> None:
        """Stop the server and remove its folder."""
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
