"""`health-monitor run` as systemd starts it: 2 only for an invalid config (no restart can fix
it), 1 with one line naming the path and the cause for everything else (systemd retries).
Real faults: a SQLite file with overwritten pages, a read-only bind mount, a port in use."""

import json
import os
import pty
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from monitor.model import Incident, Severity
from monitor.sqlite_file import SqliteFile
from tests.fakes import START
from tests.net import LOOPBACK, free_port
from tests.store_seed import create_incident

PAGE = 4096


def write_config(directory: Path, listen: str | None = None, state_path: str = "state/health-monitor.db") -> Path:
    path = directory / "monitor.toml"
    path.write_text(
        f'[monitor]\nstate_path = "{state_path}"\n'
        f'[server]\nlisten = "{listen or f"{LOOPBACK}:{free_port()}"}"\n'
        '[checks.api]\ntype = "tcp"\nhost = "127.0.0.1"\nport = 9\n'
    )
    return path


def environment() -> dict[str, str]:
    dropped = ("MONITOR_", "NOTIFY_SOCKET", "WATCHDOG_")
    return {k: v for k, v in os.environ.items() if not k.startswith(dropped)}


def start(config: Path) -> tuple[int, list[str]]:
    """`run` with stderr on a pipe, as under systemd: its exit status and its stderr lines."""
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "run", "--config", str(config)],
        capture_output=True, text=True, timeout=60, env=environment(), cwd=config.parent,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stderr.splitlines()


def only_error(lines: list[str]) -> str:
    """The one JSON line `run` writes off a terminal when it cannot start, as text."""
    (line,) = lines
    record = json.loads(line)
    assert (record["level"], record["event"]) == ("error", "daemon.start_failed"), record
    return str(record["error"])


def real_store(directory: Path, incidents: int = 300) -> Path:
    """A state store the daemon wrote, with enough rows to span many pages."""
    path = directory / "state" / "health-monitor.db"
    store = SqliteFile(path)
    for n in range(incidents):
        create_incident(store,
            Incident(check=f"c{n}", code="down", severity=Severity.P2, opened_at=START, summary="x" * 200, impact="-")
        )
    store.close()
    return path


def overwrite_pages(path: Path, first_page: int, count: int) -> None:
    with path.open("r+b") as file:
        file.seek(first_page * PAGE)
        file.write(os.urandom(count * PAGE))


def test_an_invalid_config_exits_2_with_every_problem_in_one_json_line(tmp_path) -> None:
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace("port = 9", "port = 9\ntimout = 1"))
    status, lines = start(config)
    assert status == 2
    (line,) = lines
    record = json.loads(line)
    assert record["event"] == "config.invalid"
    assert record["problems"] == ["checks.api.timout: unknown key; did you mean `timeout`?"]


def test_a_port_in_use_exits_1_naming_the_address(tmp_path) -> None:
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        listen = f"{LOOPBACK}:{taken.getsockname()[1]}"
        status, lines = start(write_config(tmp_path, listen=listen))
    assert status == 1
    assert only_error(lines) == f"cannot listen on {listen} ([server] listen): address already in use"


@pytest.mark.parametrize(
    ("first_page", "count", "cause"),
    [
        (0, 1, "file is not a database"),
        (2, 3, "database disk image is malformed"),
    ],
    ids=["header-page", "table-pages"],
)
def test_a_corrupt_state_store_exits_1_saying_to_move_it_away(tmp_path, first_page, count, cause) -> None:
    store = real_store(tmp_path)
    overwrite_pages(store, first_page, count)
    status, lines = start(write_config(tmp_path))
    assert status == 1
    error = only_error(lines)
    assert error.startswith(f"state store {store} is corrupt: {cause}"), error
    assert error.endswith("; move it away to start with an empty one")


@pytest.fixture
def read_only_view(tmp_path: Path) -> Iterator[Callable[[Path], Path]]:
    """`view(directory)`: the directory on a read-only bind mount (unlike chmod, this stops root too)."""
    mounts: list[Path] = []

    def view(directory: Path) -> Path:
        mount = tmp_path / f"read-only-{len(mounts)}"
        mount.mkdir()
        subprocess.run(["mount", "--bind", directory, mount], check=True)
        mounts.append(mount)
        subprocess.run(["mount", "-o", "remount,bind,ro", mount], check=True)
        return mount

    yield view
    for mount in reversed(mounts):
        subprocess.run(["umount", mount], check=True)


def test_a_state_store_on_a_read_only_mount_exits_1(tmp_path, read_only_view) -> None:
    state = read_only_view(real_store(tmp_path, incidents=1).parent)
    path = state / "health-monitor.db"
    status, lines = start(write_config(tmp_path, state_path=str(path)))
    assert status == 1
    assert only_error(lines) == f"cannot open the state store {path}: {state} is on a read-only file system"


def test_a_state_directory_that_cannot_be_created_exits_1(tmp_path, read_only_view) -> None:
    (tmp_path / "empty").mkdir()
    path = read_only_view(tmp_path / "empty") / "state" / "health-monitor.db"
    status, lines = start(write_config(tmp_path, state_path=str(path)))
    assert status == 1
    assert only_error(lines) == f"cannot create the state store's directory {path.parent}: Read-only file system"


def test_on_a_terminal_the_failure_is_one_plain_line(tmp_path) -> None:
    overwrite_pages(real_store(tmp_path), 0, 1)
    write_config(tmp_path)
    primary, secondary = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "monitor", "run", "--config", "monitor.toml"],
            stdout=subprocess.DEVNULL, stderr=secondary, timeout=60, env=environment(), cwd=tmp_path,
        )
        os.close(secondary)
        output = b""
        while chunk := _read(primary):
            output += chunk
    finally:
        os.close(primary)
    assert done.returncode == 1
    store = Path("state/health-monitor.db")
    assert output.decode().splitlines() == [
        f"error: state store {store} is corrupt: file is not a database; move it away to start with an empty one"
    ]


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 4096)
    except OSError:  # EIO: the terminal's other end is closed
        return b""
