"""A throwaway PgBouncer in transaction pooling mode in front of a test PostgreSQL server
(Debian's pgbouncer package), listening on 127.0.0.1 on a free port. Run as the PostgreSQL
server's owner when root, since PgBouncer refuses to run as root."""

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.net import free_port
from tests.postgres.pg_server import PostgresUnavailableError, Role, Server, _as_server_owner, _give_to_server_owner

PROGRAM = "pgbouncer"


class PgBouncer:
    def __init__(self, server: Server, role: Role) -> None:
        program = shutil.which(PROGRAM) or next(
            (path for path in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if Path(path).exists()), None
        )
        if program is None:
            raise PostgresUnavailableError("pgbouncer not found: install it (Debian: apt-get install pgbouncer)")
        self._program = program
        self._server = server
        self._role = role
        self.root = Path(tempfile.mkdtemp(prefix="hm-pgbouncer-"))
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    def dsn(self, database: str) -> str:
        return Server("127.0.0.1", self.port, "", "").dsn(self._role.name, self._role.password, database)

    def start(self) -> "PgBouncer":
        users = self.root / "userlist.txt"
        users.write_text(f'"{self._role.name}" "{self._role.password}"\n')
        config = self.root / "pgbouncer.ini"
        config.write_text(
            "[databases]\n"
            f"* = host={self._server.host} port={self._server.port}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = scram-sha-256\nauth_file = {users}\n"
            "pool_mode = transaction\ndefault_pool_size = 3\nmax_client_conn = 100\n"
            f"logfile = {self.root / 'pgbouncer.log'}\n"
        )
        _give_to_server_owner(self.root, users)
        _give_to_server_owner(config)
        self._process = subprocess.Popen([*_as_server_owner(), self._program, str(config)], stderr=subprocess.PIPE)
        self._wait_until_listening()
        return self

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                error = self._process.stderr.read().decode() if self._process.stderr else ""
                raise PostgresUnavailableError(f"pgbouncer exited: {error.strip()}")
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise PostgresUnavailableError("pgbouncer did not listen within 10 s")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            if self._process.stderr is not None:
                self._process.stderr.close()
        shutil.rmtree(self.root, ignore_errors=True)
