"""Connecting to Ray, a throw-away local cluster, and one-line engine errors.

:class:`RaySession` connects the driver to a cluster (``address``) or starts a local
Ray instance, and shuts down only what it started. :class:`LocalCluster` starts a
real multi-node cluster on this machine with ``ray start --head`` and ``ray start
--address`` (each node with its own CPU count and temp dir) and stops it by process
group, never with a broad ``ray stop``: tests, CI and the benchmark use it.
Every failure that comes from Ray becomes a :class:`RayEngineError`, one line that
names the engine and the cause (:func:`engine_error`).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tod_cleanse.adapters.parquet.errors import CleanParquetError

logger = logging.getLogger(__name__)

__all__ = ["RayEngineError", "RaySession", "LocalCluster", "engine_error", "require_ray"]

#: Environment variables that the driver forwards to every Ray worker of its job.
FORWARDED_ENV = ("TOD_CLEANSE_TEST_PAUSE_AT", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


class RayEngineError(CleanParquetError):
    """The Ray engine failed (cluster, worker or package); the message is one line.

    It starts with ``engine ray:`` and names the cause. A subclass of
    :class:`~tod_cleanse.adapters.parquet.CleanParquetError`, so the command line
    reports it as ``tod-cleanse clean: error: ...`` with exit status 2.
    """

    def __init__(self, message: str) -> None:
        super().__init__(f"engine ray: {message}")


def require_ray() -> Any:
    """Import and return :mod:`ray`, or fail with the extra to install."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise ModuleNotFoundError(
            "engine 'ray' needs Ray Data and Ray Train: pip install 'tod-cleanse[ray]' "
            f"({exc})") from exc
    return ray


_MODULE_RE = re.compile(r"No module named '([^']+)'")


def engine_error(exc: BaseException, stage: str) -> RayEngineError:
    """Turn an exception raised by Ray during ``stage`` into a one-line error.

    Parameters
    ----------
    exc : BaseException
        What Ray raised (``RayTaskError``, ``ActorDiedError``, ...).
    stage : str
        What the engine was doing (``"scoring"``, ``"writing"``...).

    Returns
    -------
    RayEngineError

    Examples
    --------
    >>> str(engine_error(ModuleNotFoundError("No module named 'tod_cleanse'"), "scoring"))
    "engine ray: a worker cannot import 'tod_cleanse' while scoring: install tod-cleanse[ray] \
on every node of the cluster"
    """
    if isinstance(exc, RayEngineError):
        return exc
    cause = getattr(exc, "cause", None)  # RayTaskError: the worker's own exception
    if isinstance(cause, BaseException) and cause is not exc:
        return engine_error(cause, stage)
    text = f"{type(exc).__name__}: {exc}"
    missing = _MODULE_RE.search(text)
    if missing:
        return RayEngineError(
            f"a worker cannot import {missing.group(1)!r} while {stage}: install "
            "tod-cleanse[ray] on every node of the cluster")
    if isinstance(exc, CleanParquetError):  # a bad row or file, found on a worker
        return RayEngineError(f"{stage} failed: {exc}")
    kind = type(exc).__name__
    died = ("ActorDiedError", "ActorUnavailableError", "WorkerCrashedError",
            "NodeDiedError", "OwnerDiedError", "ObjectLostError")
    if kind in died or "died" in text.lower() or "crashed" in text.lower():
        return RayEngineError(f"a worker died while {stage} and its retries ran out ({kind}); "
                              "nothing was committed")
    cause = _last_line(text)
    return RayEngineError(f"{stage} failed on a worker: {cause}")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else text
    return last if len(last) <= 300 else last[:297] + "..."


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast when ``host:port`` does not accept a TCP connection."""
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise RayEngineError(f"--ray-address {address!r}: expected HOST:PORT or ray://HOST:PORT")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise RayEngineError(f"cannot reach the Ray cluster at {address} "
                             f"({exc.strerror or exc})") from None


class RaySession:
    """Context manager: the driver's connection to Ray for one run.

    Parameters
    ----------
    address : str, optional
        ``HOST:PORT`` of a running cluster (``ray start --head`` prints it),
        ``ray://HOST:PORT`` (Ray Client) or ``"auto"``. ``None``: start a local
        Ray instance for this run and stop it at the end.
    num_cpus : int, optional
        CPUs of the local instance (ignored with ``address``).

    Examples
    --------
    Needs Ray, so not run as a doctest::

        with RaySession(None, num_cpus=1) as session:
            print(session.n_nodes())   # 1
    """

    def __init__(self, address: str | None = None, num_cpus: int | None = None) -> None:
        self.address = address
        self.num_cpus = num_cpus
        self.started = False

    def __enter__(self) -> RaySession:
        ray = require_ray()
        if ray.is_initialized():
            return self
        env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
        env["TOD_CLEANSE_TORCH_THREADS"] = "1"
        kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False,
                                  "runtime_env": {"env_vars": env}}
        if self.address is not None:
            _check_reachable(self.address)
            kwargs["address"] = self.address
        else:
            kwargs.update(num_cpus=self.num_cpus, include_dashboard=False,
                          object_store_memory=_local_object_store())
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        _quiet_ray_loggers()
        try:
            ray.init(**kwargs)
        except Exception as exc:  # ray raises ConnectionError, RuntimeError, ...
            where = f"at {self.address}" if self.address else "(local instance)"
            raise RayEngineError(f"cannot connect to the Ray cluster {where}: "
                                 f"{_last_line(str(exc))}") from None
        self.started = True
        import ray.data

        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.max_consecutive_actor_init_deaths = 2
        return self

    def n_nodes(self) -> int:
        """Number of live nodes in the cluster."""
        import ray

        return sum(1 for node in ray.nodes() if node.get("Alive"))

    def __exit__(self, *exc: Any) -> None:
        if self.started:
            import ray

            ray.shutdown()
            self.started = False


def _quiet_ray_loggers() -> None:
    """Ray's own log lines stay in its log files (``/tmp/ray/session_*/logs``): on the
    console the run prints its one-line result or error. ``-v``/``--debug`` (our
    loggers at DEBUG) keep Ray's INFO lines."""
    level = logging.INFO if logger.isEnabledFor(logging.DEBUG) else logging.CRITICAL
    for name in ("ray", "ray.data", "ray.train", "ray.tune"):
        logging.getLogger(name).setLevel(level)


def _local_object_store() -> int:
    """Object store of a local instance: a tenth of RAM, between 128 MB and 2 GB."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):  # pragma: no cover
        total = 8 << 30
    return int(min(max(total // 10, 128 << 20), 2 << 30))


class LocalCluster:
    """A real Ray cluster of ``nodes`` nodes on this machine, for tests and benchmarks.

    ``ray start --head`` and then ``ray start --address`` for each further node,
    each with ``num_cpus`` CPUs, a small object store and its own temp dir. Each
    node runs in its own process group (``--block``), which :meth:`stop` ends
    (SIGTERM, then SIGKILL): only the processes this object started.

    The nodes listen on 127.0.0.1 without Ray's token authentication: a driver
    connects with the environment :attr:`client_env` (``RAY_AUTH_MODE=disabled``).

    Parameters
    ----------
    nodes : int, default=2
    num_cpus : int, default=1
        CPUs per node.
    object_store_bytes : int, default=80_000_000
        Object store per node.
    env : dict, optional
        Extra environment of the node processes (and so of their workers).

    Examples
    --------
    Starts real Ray processes, so not run as a doctest::

        with LocalCluster(nodes=2) as cluster:
            os.environ.update(cluster.client_env)
            with RaySession(cluster.address) as session:
                print(session.n_nodes())   # 2
    """

    def __init__(self, nodes: int = 2, num_cpus: int = 1, object_store_bytes: int = 80_000_000,
                 env: dict[str, str] | None = None) -> None:
        self.nodes, self.num_cpus = nodes, num_cpus
        self.object_store_bytes = object_store_bytes
        self.env = env or {}
        #: Environment a driver needs to connect: this throw-away cluster listens on
        #: 127.0.0.1 only and runs without Ray's token authentication.
        self.client_env = {"RAY_AUTH_MODE": "disabled"}
        self.procs: list[subprocess.Popen] = []
        self.dirs: list[Path] = []
        self.address = ""

    def _start_node(self, head: bool, port: int) -> None:
        temp = Path(tempfile.mkdtemp(prefix="tod-ray-", dir="/tmp"))
        self.dirs.append(temp)
        ray_bin = str(Path(sys.executable).with_name("ray"))
        args = [ray_bin, "start", "--block", f"--num-cpus={self.num_cpus}",
                f"--object-store-memory={self.object_store_bytes}", f"--temp-dir={temp}",
                "--disable-usage-stats"]
        args += (["--head", f"--port={port}", "--include-dashboard=false",
                  "--node-ip-address=127.0.0.1"]
                 if head else [f"--address={self.address}", "--node-ip-address=127.0.0.1"])
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **self.client_env, **self.env}
        log = open(temp / "ray-start.log", "wb")  # noqa: SIM115 - closed with the node
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
        log.close()
        self.procs.append(proc)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            text = (temp / "ray-start.log").read_text(errors="replace")
            if "Ray runtime started" in text:
                return
            if proc.poll() is not None:
                raise RuntimeError(f"ray start failed: {_last_line(text)}")
            time.sleep(0.5)
        raise RuntimeError("ray start did not come up within 90 s")

    def start(self) -> LocalCluster:
        """Start the nodes; returns self (``address`` is the head's ``HOST:PORT``)."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.address = f"127.0.0.1:{port}"
        try:
            self._start_node(True, port)
            for _ in range(self.nodes - 1):
                self._start_node(False, port)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every node this object started (process groups), then remove temp dirs."""
        for proc in reversed(self.procs):
            _kill_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _kill_group(proc.pid, signal.SIGKILL)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:  # pragma: no cover
                logger.warning("ray node process %d did not exit", proc.pid)
        self.procs.clear()
        time.sleep(0.5)
        for temp in self.dirs:
            shutil.rmtree(temp, ignore_errors=True)
        self.dirs.clear()

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _kill_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
