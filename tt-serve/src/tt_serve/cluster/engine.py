"""The gateway's side of cluster mode: a model's engine is a Ray Serve application.

:class:`RayCluster` is the gateway's connection: it starts Serve's HTTP proxy on the head node (loopback,
``serve_port``), deploys and deletes applications, and polls ``serve.status()`` twice a second for every
application. :class:`ClusterEngine` is an :class:`~tt_serve.gateway.engine.Engine` whose "process" is
that application: the manager, swaps, proxy, sampler and console use it as they use a local engine. Its
state follows Serve's replicas: serving while at least one replica runs, "starting" (so 503 +
Retry-After with what Serve says, e.g. no free ``TTNPU``) while none does: during a stop-then-start
rollout, while Ray cannot place a replica, after a node holding the only replica died.

Ray decides placement (``ray_actor_options.resources.TTNPU``), health-checks replicas and restarts
them, and rolls updates: a swap redeploys the same application with ``max_surge_percent=0`` (no extra
replica beside the old ones: their cards are exclusive), a fifth of the replicas at a time (Serve's
default), so a model with two replicas or more keeps serving through a swap.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from tt_serve.gateway.engine import Engine
from tt_serve.gateway.preparation import Prepared
from tt_serve.gateway.secrets import Redactor
from tt_serve.gateway.settings import ClusterSettings, GatewaySettings, ModelSpec
from tt_serve.progress import Phase

POLL_S = 0.5
RESOURCE = "TTNPU"  # Ray's name for a Tenstorrent card (ray/_private/accelerators/ttnpu.py)


def app_name(model: str) -> str:
    return "tt-" + "".join(c if c.isalnum() or c in "-_." else "_" for c in model)


class RayCluster:
    def __init__(self, settings: ClusterSettings) -> None:
        self.settings = settings
        self.apps: dict[str, Any] = {}  # application name -> Serve's ApplicationStatusOverview
        self.engines: dict[str, ClusterEngine] = {}  # application -> the engine the gateway routes to
        self._poller: asyncio.Task[None] | None = None
        # One Serve API call at a time: two deploys from two threads at once lose one of them.
        self._calls = asyncio.Lock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.serve_port}"

    def _connect(self) -> None:
        import ray
        from ray import serve

        ray.init(address=self.settings.address, namespace="tt-serve", log_to_driver=False)
        serve.start(
            proxy_location="HeadOnly",
            http_options={"host": "127.0.0.1", "port": self.settings.serve_port},
        )

    async def connect(self) -> None:
        await asyncio.to_thread(self._connect)
        self._poller = asyncio.create_task(self._poll_forever())

    async def _poll_forever(self) -> None:
        from ray import serve

        while True:
            try:
                self.apps = dict((await asyncio.to_thread(serve.status)).applications)
            except Exception:  # the controller restarting: keep the last view, try again
                pass
            for app, engine in list(self.engines.items()):
                engine.observe(self.apps.get(app))
            await asyncio.sleep(POLL_S)

    async def deploy(self, app: str, prefix: str, options: Mapping[str, Any], args: tuple[Any, ...]) -> None:
        def run() -> None:
            from ray import serve
            from ray.serve.api import _run  # serve.run without waiting until RUNNING (ray pinned: 2.60.0)

            from tt_serve.cluster.replica import EngineReplica

            deployment = serve.deployment(EngineReplica, name="engine", **options)
            _run(deployment.bind(*args), name=app, route_prefix=prefix, _blocking=False)

        async with self._calls:
            await asyncio.to_thread(run)

    async def delete(self, app: str) -> None:
        from ray import serve

        async with self._calls:
            await asyncio.to_thread(serve.delete, app, True)
        self.apps.pop(app, None)

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
        import ray

        ray.shutdown()  # this gateway's connection only: the cluster and its other users go on


class ClusterEngine(Engine):
    placed_by_cluster = True  # Ray places it: no card of the gateway's own host is claimed

    def __init__(
        self,
        spec: ModelSpec,
        generation: int,
        log_dir: Path,
        redactor: Redactor,
        cluster: RayCluster,
        settings: GatewaySettings,
        config_path: Path | None,
        needs_card: Callable[[ModelSpec], bool],
    ) -> None:
        super().__init__(spec, generation, log_dir, redactor)
        self.cluster, self.settings, self.config_path = cluster, settings, config_path
        self.app = app_name(spec.name)
        self.prefix = "/m/" + quote(spec.name, safe="")
        self.ttnpu = 0  # cards per replica, set by the manager's placement (placement.card_need)
        self.owns_app = True  # False once a newer generation took the application over (a rolling swap)
        self.replica_states: dict[str, int] = {}
        self.deployment_status = ""  # Serve's: UPDATING, HEALTHY, UPSCALING, UNHEALTHY, DEPLOY_FAILED, ...
        self.observed_at = 0.0  # monotonic time of the poller's last look at the application
        # Set while no replica runs: requests waiting for an answer stop waiting (proxy.py) and get 503.
        self.replicas_lost = asyncio.Event()
        self.message = ""
        self.downtime_s = 0.0  # time with no running replica during its start (a swap's downtime)
        self._needs_card = needs_card

    def local_prepared(self) -> Prepared:
        """What the gateway knows before any replica prepared itself on its own host."""
        return Prepared(
            backend=self.spec.backend or "resolved by each replica",
            reason="resolved and checked by each replica on its host",
            model_target=self.spec.model,
            argv=(),
            env_changes={},
            warnings=(),
            prepare_model=None,
            exclusive_device=True,
            needs_card=self._needs_card(self.spec),
            inputs={"inputs": None, "unknown": "each replica resolves the model on its own host"},
        )

    @property
    def base_url(self) -> str:
        return self.cluster.base_url + self.prefix

    @property
    def where(self) -> str:
        return f"Ray Serve application {self.app} at {self.base_url}"

    @property
    def running(self) -> bool:
        return self.owns_app and self.state in ("serving", "starting", "draining")

    def exit_status(self) -> int | None:
        return None  # Ray restarts replicas; observe() follows them

    @property
    def running_replicas(self) -> int:
        return self.replica_states.get("RUNNING", 0)

    def observe(self, app: Any | None) -> None:
        """Follow Serve's view of the application (called by the cluster's poller)."""
        self.observed_at = time.monotonic()
        if app is None:
            self.replica_states, self.message, self.deployment_status = {}, "", ""
        else:
            deployment = next(iter(app.deployments.values()), None)
            states = dict(deployment.replica_states) if deployment is not None else {}
            status = deployment.status if deployment is not None else ""
            self.deployment_status = str(getattr(status, "value", status))
            self.replica_states = {str(getattr(k, "value", k)): int(v) for k, v in states.items()}
            self.message = (deployment.message if deployment is not None else "") or app.message or ""
        if self.state not in ("serving", "starting") or self.ready_at is None:
            return  # stopped, draining or failed; or its start is still being watched by start()
        running = self.running_replicas > 0
        self.state, self.healthy = ("serving", True) if running else ("starting", False)
        self.waiting_for = None if running else self._waiting_text()
        self._mark(running)

    def _mark(self, running: bool) -> None:
        if running and self.replicas_lost.is_set():
            self.replicas_lost = asyncio.Event()  # a fresh one: nobody waits on a stale "lost"
        elif not running:
            self.replicas_lost.set()

    def _waiting_text(self) -> str:
        need = f"{self.ttnpu} {RESOURCE} per replica" if self.ttnpu else "no card"
        # Serve's message may hold a whole traceback: its first line says what matters.
        first = self.message.strip().splitlines()[0][:300] if self.message.strip() else ""
        said = f"; Ray Serve: {first}" if first else ""
        return (
            f"Ray to place and start a replica ({need}; replicas {self.replica_states or 'none yet'}){said}"
        )

    def _options(self) -> dict[str, Any]:
        resources = {RESOURCE: self.ttnpu} if self.ttnpu else {}
        return {
            "num_replicas": self.spec.replicas,
            "ray_actor_options": {"num_cpus": 0, "resources": resources},
            "max_ongoing_requests": 256,  # vLLM batches and queues itself
            "health_check_period_s": 5,
            "health_check_timeout_s": 30,
            "graceful_shutdown_wait_loop_s": 1,
            "graceful_shutdown_timeout_s": self.settings.drain_timeout_s,
            "max_constructor_retry_count": 2,
            "max_surge_percent": 0,  # exclusive cards: a replica stops before its replacement starts
        }

    async def start(
        self,
        timeout: float,
        client: httpx.AsyncClient,
        env: Mapping[str, str],
        on_port_taken: Callable[[Engine, int], None] | None = None,
    ) -> None:
        """Deploy (or roll) the application and return once it runs this generation; EngineError if Serve
        says the deployment failed or ``timeout`` passes."""
        self.timeout, self.started_at = timeout, time.time()
        # Serve keeps an application's last_deployed_time_s across redeploys: a rollout is known by the
        # application or its deployment leaving RUNNING / HEALTHY, and its end by their coming back.
        changed = self.cluster.apps.get(self.app) is None
        self.progress.record(
            Phase.STARTING, f"Ray Serve application {self.app}: {self.spec.replicas} replica(s)"
        )
        self.cluster.engines[self.app] = self  # the poller follows this generation from now on
        spec = {
            "name": self.spec.name,
            "model": self.spec.model,
            "backend": self.spec.backend,
            "engine_args": list(self.spec.engine_args),
            "tt": dict(self.spec.tt),
            "env": dict(self.spec.env),
        }  # not the number of replicas: a change of it alone must not look like a new version
        rule = {"drop": list(self.settings.engine_env.drop), "keep": list(self.settings.engine_env.keep)}
        config = str(self.config_path) if self.config_path else None
        await self.cluster.deploy(
            # No generation among the arguments: a change of replicas alone scales, it restarts nothing.
            self.app,
            self.prefix,
            self._options(),
            (spec, config, rule, timeout),
        )
        deadline, last = time.monotonic() + timeout, time.monotonic()
        deployed = last  # the deploy call has returned: Serve's controller has the new target
        while True:
            await asyncio.sleep(0.2)
            now = time.monotonic()
            if self.running_replicas == 0:
                self.downtime_s += now - last
            last = now
            if self.observed_at <= deployed:
                continue  # no look at the application since the deploy was sent
            app = self.cluster.apps.get(self.app)
            status = str(getattr(app.status, "value", app.status)) if app is not None else "NOT_STARTED"
            if app is not None and (status != "RUNNING" or self.deployment_status != "HEALTHY"):
                changed = True
            # A redeploy that changes nothing never leaves RUNNING: done once it has had time to.
            unchanged = now - deployed > 15 and self.running_replicas == self.spec.replicas
            fresh = app is not None and (changed or unchanged)
            # Requests go on to the replicas that run (old or new) during a rollout; none: 503.
            running = self.running_replicas > 0
            self.state, self.healthy = ("serving", True) if running else ("starting", False)
            self.waiting_for = None if running else self._waiting_text()
            self._mark(running)
            if fresh and status == "RUNNING":
                break
            if fresh and status == "DEPLOY_FAILED":
                raise self.fail(f"Ray Serve could not deploy {self.app}: {self.message}", with_log=False)
            if now > deadline:
                raise self.fail(
                    f"{self.app} was not running after {timeout:.0f} s: {self._waiting_text()}", False
                )
        self.progress.record(Phase.READY)
        self.state, self.healthy, self.ready_at, self.waiting_for = "serving", True, time.time(), None

    async def stop(self, timeout: float = 30) -> None:
        if self.owns_app and self.cluster.engines.get(self.app) is self:
            self.cluster.engines.pop(self.app, None)
            await self.cluster.delete(self.app)
            self.progress.record(Phase.STOPPED)
        if self.state != "failed":
            self.state = "stopped"
        self.healthy = False

    def as_dict(self, with_log: bool = False) -> dict[str, object]:
        entry = super().as_dict(with_log)
        entry["cluster"] = {
            "application": self.app,
            "route_prefix": self.prefix,
            "replicas": self.spec.replicas,
            "ttnpu_per_replica": self.ttnpu,
            "replica_states": self.replica_states,
            "message": self.message,
        }
        return entry


def cluster_manager_args(
    settings: GatewaySettings, config_path: Path | None, catalog: Mapping[str, Any], log_dir: Path
) -> dict[str, Any]:
    """The Manager's ``factory`` and ``hooks`` for cluster mode (server.py)."""
    assert settings.cluster is not None
    cluster = RayCluster(settings.cluster)

    def needs_card(spec: ModelSpec) -> bool:
        backend = catalog.get(spec.backend) if spec.backend else None
        return backend is not None and backend.hardware.value == "tenstorrent"

    def factory(spec: ModelSpec, generation: int, redactor: Redactor) -> Engine:
        return ClusterEngine(spec, generation, log_dir, redactor, cluster, settings, config_path, needs_card)

    return {"factory": factory, "hooks": (cluster.connect, cluster.close)}
