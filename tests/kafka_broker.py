"""A Kafka broker of a test's own, from the jars `scripts/services` fetched.

The shared broker on 9092 speaks PLAINTEXT and is used by every other test, and is never
stopped by one; a test that needs a broker configured otherwise (TLS with SASL/SCRAM users)
or one it may kill and restart starts one here: KRaft, one node, a fresh data directory,
free ports; for TLS its own self-signed certificate (the JDK's keytool) and SCRAM users
written at format time. Ready is what the test says (a client listed the topics).
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
LIBS_ENV_VAR = "EVLEDGER_KAFKA_LIBS"
# A JVM start, KRaft election and a TLS handshake: ~10 s on a quiet 2-core machine.
BROKER_READY_DEADLINE_S = 120
BROKER_STOP_DEADLINE_S = 60
READY_POLL_INTERVAL_S = 0.5
HEAP = "-Xmx384m"
KEYSTORE_PASSWORD = "evledger-test-keystore"
SCRAM_LOGIN_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"


def kafka_libs() -> Path:
    """The broker's jars: $EVLEDGER_KAFKA_LIBS (set by `scripts/services up`), else this
    checkout's `.services/kafka/libs`; a test is skipped only where neither exists (a machine
    whose services come from testcontainers)."""
    configured = os.environ.get(LIBS_ENV_VAR)
    libs = Path(configured) if configured else ROOT / ".services" / "kafka" / "libs"
    if not any(libs.glob("kafka_2.13-*.jar")):
        if configured:
            pytest.fail(f"{LIBS_ENV_VAR}={configured} holds no kafka_2.13 jar")
        pytest.skip(f"no broker jars at {libs}: run `eval \"$(scripts/services up)\"` first")
    if shutil.which("java") is None or shutil.which("keytool") is None:
        pytest.fail("java and keytool are needed (scripts/services installs the JDK)")
    return libs


@dataclass(frozen=True, slots=True)
class SecuredBroker:
    bootstrap: str  # the SASL_SSL listener
    cafile: Path  # PEM of the broker's self-signed certificate
    users: dict[str, str]  # SCRAM-SHA-512 user -> password
    log: Path


def _run(command: list[str], log: Path) -> None:
    with log.open("a") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        raise AssertionError(f"{command[0]} ... failed ({done.returncode}); see {log}:\n"
                             + log.read_text()[-3000:])


def _certificate(directory: Path, log: Path) -> tuple[Path, Path]:
    keystore, cafile = directory / "broker.p12", directory / "ca.pem"
    _run(["keytool", "-genkeypair", "-keystore", str(keystore), "-storetype", "PKCS12",
          "-storepass", KEYSTORE_PASSWORD, "-keypass", KEYSTORE_PASSWORD, "-alias", "broker",
          "-keyalg", "RSA", "-keysize", "2048", "-validity", "2", "-dname", "CN=localhost",
          "-ext", "SAN=dns:localhost,ip:127.0.0.1", "-noprompt"], log)
    _run(["keytool", "-exportcert", "-rfc", "-keystore", str(keystore), "-storetype", "PKCS12",
          "-storepass", KEYSTORE_PASSWORD, "-alias", "broker", "-file", str(cafile)], log)
    return keystore, cafile


def _properties(directory: Path, keystore: Path, internal: int, secure: int,
                controller: int) -> Path:
    path = directory / "server.properties"
    single_node = _SINGLE_NODE.replace("{data}", str(directory / "data"))
    path.write_text(f"""process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:{controller}
listeners=INTERNAL://127.0.0.1:{internal},SECURE://127.0.0.1:{secure},CONTROLLER://127.0.0.1:{controller}
advertised.listeners=INTERNAL://127.0.0.1:{internal},SECURE://127.0.0.1:{secure}
controller.listener.names=CONTROLLER
inter.broker.listener.name=INTERNAL
listener.security.protocol.map=CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT,SECURE:SASL_SSL
listener.name.secure.sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.secure.scram-sha-512.sasl.jaas.config={SCRAM_LOGIN_MODULE} required;
listener.name.secure.ssl.keystore.location={keystore}
listener.name.secure.ssl.keystore.password={KEYSTORE_PASSWORD}
listener.name.secure.ssl.keystore.type=PKCS12
{single_node}""")
    return path


# What every broker of a test's own has: one node, its data in `{data}`, topics made by hand.
_SINGLE_NODE = """log.dirs={data}
num.partitions=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
"""


class BrokerProcess:
    """The broker's JVM on a formatted data directory: started, killed (SIGKILL) or stopped
    cleanly (SIGTERM), and started again on the same data and ports."""

    def __init__(self, libs: Path, properties: Path, log: Path) -> None:
        self._command = ["java", HEAP, "-cp", f"{libs}/*", "kafka.Kafka", str(properties)]
        self.log = log
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, ready: Callable[[], bool]) -> None:
        """Start the JVM and return once `ready()` (asked every READY_POLL_INTERVAL_S)."""
        assert self._process is None, "started twice"
        with self.log.open("a") as out:
            self._process = subprocess.Popen(self._command, stdout=out,
                                             stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + BROKER_READY_DEADLINE_S
        while not ready():
            if self._process.poll() is not None:
                raise AssertionError(f"the broker exited ({self._process.returncode}):\n"
                                     + self.log.read_text()[-3000:])
            if time.monotonic() > deadline:
                raise AssertionError(f"the broker was not ready in {BROKER_READY_DEADLINE_S} s:\n"
                                     + self.log.read_text()[-3000:])
            time.sleep(READY_POLL_INTERVAL_S)

    def kill(self) -> None:
        """kill -9: no shutdown, the log recovered at the next start."""
        self._signal_and_wait(signal.SIGKILL)

    def stop(self) -> None:
        """A clean shutdown (SIGTERM), SIGKILL after BROKER_STOP_DEADLINE_S."""
        self._signal_and_wait(signal.SIGTERM)

    def _signal_and_wait(self, signum: int) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signum)
        try:
            process.wait(BROKER_STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@dataclass(frozen=True, slots=True)
class PlainBroker:
    bootstrap: str  # a PLAINTEXT listener
    process: BrokerProcess  # to kill, stop and start again


@contextmanager
def plain_broker(directory: Path, ready: Callable[[str], bool]) -> Iterator[PlainBroker]:
    """A PLAINTEXT broker of the caller's own, to hurt as it likes; `ready(bootstrap)` is
    asked until True at each start."""
    libs = kafka_libs()
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "broker.log"
    port, controller = free_port(), free_port()
    properties = directory / "server.properties"
    single_node = _SINGLE_NODE.replace("{data}", str(directory / "data"))
    properties.write_text(f"""process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:{controller}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
{single_node}""")
    _run(["java", HEAP, "-cp", f"{libs}/*", "kafka.tools.StorageTool", "format",
          "--standalone", f"--cluster-id={_cluster_id()}", "-c", str(properties)], log)
    broker = PlainBroker(f"127.0.0.1:{port}", BrokerProcess(libs, properties, log))
    try:
        broker.process.start(lambda: ready(broker.bootstrap))
        yield broker
    finally:
        broker.process.stop()


@contextmanager
def secured_broker(directory: Path, users: dict[str, str],
                   ready: Callable[[SecuredBroker], bool]) -> Iterator[SecuredBroker]:
    """A broker whose SECURE listener wants TLS and SCRAM-SHA-512 for `users`; `ready` is
    asked (with the broker) until it returns True, so readiness is what the test itself does."""
    libs = kafka_libs()
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "broker.log"
    keystore, cafile = _certificate(directory, log)
    secure_port = free_port()
    properties = _properties(directory, keystore, free_port(), secure_port, free_port())
    scram = [f"SCRAM-SHA-512=[name={name},password={password}]"
             for name, password in users.items()]
    _run(["java", HEAP, "-cp", f"{libs}/*", "kafka.tools.StorageTool", "format",
          "--standalone", f"--cluster-id={_cluster_id()}", "-c", str(properties),
          *[arg for entry in scram for arg in ("--add-scram", entry)]], log)
    broker = SecuredBroker(bootstrap=f"127.0.0.1:{secure_port}", cafile=cafile, users=users,
                           log=log)
    process = BrokerProcess(libs, properties, log)
    try:
        process.start(lambda: ready(broker))
        yield broker
    finally:
        process.stop()


def _cluster_id() -> str:
    # KRaft cluster ids are 16 random bytes in URL-safe base64 without padding. One in 64
    # starts with '-', which the storage tool's argument parser takes for an option when
    # given as a separate argument ("expected one argument"): callers pass --cluster-id=ID.
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")

