"""A local two-node Ray cluster on 127.0.0.1 for tests, and the checks that it stays on loopback.

Ray's own ``cluster_utils.Cluster`` (both nodes are this process's children, so a test can kill one and
check that nothing is left), bound to loopback: ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` keeps the node
address 127.0.0.1 (``ray start --node-ip-address=127.0.0.1`` would replace it by the machine's external
address and listen on every interface; measured: gcs_server and raylet on ``*``). Tests check every
listening socket with :func:`listening`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psutil

LOOPBACK_IPS = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}

# Set before Ray is imported (it reads them at import): Ray's single-node address handling (127.0.0.1
# stays 127.0.0.1), no usage stats. Restored once the cluster is gone.
_RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


@dataclass(frozen=True)
class LocalCluster:
    """``cluster``: Ray's Cluster; ``worker``: the worker node (``cluster.head_node`` the head);
    ``before``: the pids of this process's children from before it started."""

    cluster: Any
    worker: Any
    before: set[int]


class Placeholder:
    """An actor that only takes a node's CPU (``ray.remote(num_cpus=...)(Placeholder)``): keeps work off
    that node for now."""

    def ready(self) -> bool:
        return True


def ray_module() -> Any:
    """Ray, imported (after :func:`local_cluster` set its environment); untyped."""
    import ray

    return ray


@contextlib.contextmanager
def local_cluster(head_cpus: float = 1, worker_cpus: float = 1) -> Iterator[LocalCluster]:
    """A head node and a worker node, both on 127.0.0.1, this process connected as the driver; all shut
    down and their files removed afterwards."""
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    saved = {k: os.environ.get(k) for k in [*_RAY_ENV, "RAY_TMPDIR"]}
    tmp = tempfile.mkdtemp(prefix="kr", dir="/tmp")  # short: Ray's unix sockets live under it
    os.environ.update(_RAY_ENV, RAY_TMPDIR=tmp)
    ray = ray_module()
    from ray._private import ray_constants
    from ray.cluster_utils import Cluster

    # Ray imported earlier in this session (another test) read the variable then: said again here.
    cluster_mode = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    node: dict[str, Any] = {
        "node_ip_address": "127.0.0.1",
        "include_dashboard": False,
        "object_store_memory": 80 << 20,
    }
    c: Any = None
    try:
        c = Cluster(
            initialize_head=True, head_node_args={"num_cpus": head_cpus, "temp_dir": f"{tmp}/ray", **node}
        )
        worker = c.add_node(num_cpus=worker_cpus, **node)
        ray.init(address=c.address, log_to_driver=False)
        yield LocalCluster(c, worker, before)
    finally:
        ray.shutdown()
        if c is not None:
            c.shutdown()
        ray_constants.ENABLE_RAY_CLUSTER = cluster_mode
        shutil.rmtree(tmp, ignore_errors=True)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def ray_processes(before: set[int]) -> list[psutil.Process]:
    """This process's descendants started with the cluster (GCS, raylets, agents, workers)."""
    out = []
    for p in psutil.Process().children(recursive=True):
        try:
            if p.pid not in before and "ray" in " ".join(p.cmdline()):
                out.append(p)
        except psutil.NoSuchProcess:
            continue
    return out


def listening(processes: list[psutil.Process]) -> list[tuple[str, str, int]]:
    """(process name, address, port) of every listening TCP socket of ``processes``."""
    out = []
    for proc in processes:
        try:
            conns = proc.net_connections(kind="inet")
        except psutil.NoSuchProcess:
            continue
        out += [(proc.name(), c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN]
    return out


def exposed(before: set[int]) -> list[tuple[str, str, int]]:
    """The listening sockets of this process and the cluster's that are not on loopback; AssertionError
    when there is none at all (the check would prove nothing)."""
    processes = [psutil.Process(), *ray_processes(before)]
    assert any(p.name() in ("gcs_server", "raylet") for p in processes)
    found = listening(processes)
    assert found, "no listening socket found: the check would prove nothing"
    return [x for x in found if x[1] not in LOOPBACK_IPS]


def shut_down(cluster: LocalCluster) -> list[psutil.Process]:
    """Disconnect and stop every node; the cluster's processes still alive 20 s later (none expected)."""
    processes = ray_processes(cluster.before)
    ray_module().shutdown()
    cluster.cluster.shutdown()
    _, alive = psutil.wait_procs(processes, timeout=20)
    return list(alive)
