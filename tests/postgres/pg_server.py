"""Throwaway PostgreSQL servers for the postgres check's tests and benchmark.

`Cluster` runs initdb and pg_ctl from /usr/lib/postgresql/*/bin into a temporary
directory, listening only on 127.0.0.1 on a free port, with password (scram-sha-256)
authentication for TCP. As root the server binaries run as the `postgres` user, since
PostgreSQL refuses to run as root. `provision()` creates the roles and database the
tests connect as.
"""

import asyncio
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import asyncpg

from tests.net import free_port

SERVER_BIN_GLOB = "/usr/lib/postgresql/*/bin"
SERVER_OWNER = "postgres"
ADMIN_USER = "postgres"
ADMIN_PASSWORD = "admin-Pa55word"
APP_DATABASE = "hm_test_app"


class PostgresUnavailableError(RuntimeError):
    """No PostgreSQL server could be started; the message says what to install or set."""


@dataclass(frozen=True, slots=True)
class Role:
    name: str
    password: str
    pg_monitor: bool = False


MONITOR = Role("hm_test_monitor", "monitor-S3cret-pw", pg_monitor=True)
PLAIN = Role("hm_test_plain", "plain-S3cret-pw")
APP = Role("hm_test_app", "app-S3cret-pw")
ROLES = (MONITOR, PLAIN, APP)


@dataclass(frozen=True, slots=True)
class Server:
    """Where a PostgreSQL server listens and how its superuser logs in."""

    host: str
    port: int
    admin_user: str
    admin_password: str

    def dsn(self, user: str, password: str, database: str = APP_DATABASE) -> str:
        return f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@{self.host}:{self.port}/{database}"

    def role_dsn(self, role: Role, database: str = APP_DATABASE) -> str:
        return self.dsn(role.name, role.password, database)

    @property
    def admin_dsn(self) -> str:
        return self.dsn(self.admin_user, self.admin_password, "postgres")

    @classmethod
    def from_dsn(cls, dsn: str) -> "Server":
        parts = urlsplit(dsn)
        if parts.scheme not in ("postgres", "postgresql") or not parts.username:
            raise PostgresUnavailableError("MONITOR_TEST_PG_DSN must be a postgresql://user:password@host:port/db URL")
        return cls(parts.hostname or "127.0.0.1", parts.port or 5432, parts.username, parts.password or "")


class Cluster:
    """A PostgreSQL cluster of its own in a temporary directory; `destroy()` removes it."""

    def __init__(
        self, *, max_connections: int = 20, superuser_reserved_connections: int = 3, durable: bool = False
    ) -> None:
        self.bin_dir = find_server_binaries()
        self.root = Path(tempfile.mkdtemp(prefix="hm-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        self.server = Server("127.0.0.1", self.port, ADMIN_USER, ADMIN_PASSWORD)
        self._settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.root}'",
            "max_connections": str(max_connections),
            "superuser_reserved_connections": str(superuser_reserved_connections),
            "shared_buffers": "32MB",
        }
        if not durable:  # tests need no durability; a benchmark of commits does
            self._settings |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}

    def create(self) -> "Cluster":
        """initdb, configure and start; the cluster is destroyed again if any step fails."""
        try:
            self._initdb()
            with (self.data / "postgresql.conf").open("a") as conf:
                conf.writelines(f"{name} = {value}\n" for name, value in self._settings.items())
            self.start()
        except BaseException:
            self.destroy()
            raise
        return self

    def start(self) -> None:
        self._pg_ctl("start", "-w", "-t", "30", "-l", str(self.log))

    def stop(self) -> None:
        self._pg_ctl("stop", "-w", "-t", "30", "-m", "fast")

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._pg_ctl("stop", "-w", "-t", "30", "-m", "immediate", check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def _initdb(self) -> None:
        password_file = self.root / "admin-password"
        password_file.write_text(ADMIN_PASSWORD + "\n")
        _give_to_server_owner(self.root, password_file)
        self._run(
            self.bin_dir / "initdb",
            "-D", str(self.data),
            "-U", ADMIN_USER,
            f"--pwfile={password_file}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )  # fmt: skip

    def _pg_ctl(self, *args: str, check: bool = True) -> None:
        self._run(self.bin_dir / "pg_ctl", "-D", str(self.data), *args, check=check)

    def _run(self, program: Path, *args: str, check: bool = True) -> None:
        command = [*_as_server_owner(), str(program), *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        if check and result.returncode != 0:
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise PostgresUnavailableError(
                f"{program.name} {args[0] if args else ''} failed ({result.returncode}): "
                f"{result.stderr.strip() or result.stdout.strip()}\n{log}"
            )


def find_server_binaries() -> Path:
    """The newest installed PostgreSQL's bin directory; a clear error when there is none."""
    candidates = sorted(
        (Path(path) for path in glob.glob(SERVER_BIN_GLOB) if Path(path, "initdb").exists()),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
    )
    if not candidates:
        raise PostgresUnavailableError(
            f"PostgreSQL server binaries (initdb, pg_ctl) not found under {SERVER_BIN_GLOB}: "
            "install them (Debian: apt-get install postgresql-15) or set MONITOR_TEST_PG_DSN "
            "to a superuser postgresql:// URL"
        )
    return candidates[-1]



def _as_server_owner() -> list[str]:
    """PostgreSQL refuses to run as root: as root, run its binaries as the `postgres` user."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(SERVER_OWNER)
    except KeyError:
        raise PostgresUnavailableError(
            f"running as root, but there is no {SERVER_OWNER!r} user to run PostgreSQL as"
        ) from None
    return ["runuser", "-u", SERVER_OWNER, "--"]


def _give_to_server_owner(*paths: Path) -> None:
    if os.geteuid() == 0:
        owner = pwd.getpwnam(SERVER_OWNER)
        for path in paths:
            os.chown(path, owner.pw_uid, owner.pw_gid)
    paths[-1].chmod(0o600)


def provision(server: Server) -> None:
    """Create (or reset) the test roles and the application database, idempotently."""
    asyncio.run(_provision(server))


async def _provision(server: Server) -> None:
    admin = await asyncpg.connect(server.admin_dsn, timeout=10)
    try:
        for role in ROLES:
            exists = await admin.fetchval("SELECT true FROM pg_roles WHERE rolname = $1", role.name)
            verb = "ALTER" if exists else "CREATE"
            await admin.execute(f"{verb} ROLE {role.name} LOGIN PASSWORD '{role.password}'")
            grant = "GRANT" if role.pg_monitor else "REVOKE"
            await admin.execute(f"{grant} pg_monitor {'TO' if role.pg_monitor else 'FROM'} {role.name}")
        if not await admin.fetchval("SELECT true FROM pg_database WHERE datname = $1", APP_DATABASE):
            await admin.execute(f"CREATE DATABASE {APP_DATABASE} OWNER {APP.name}")
    finally:
        await admin.close()
