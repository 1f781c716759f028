"""``tt-serve gateway``: load the config, build the app, run it with uvicorn until SIGINT/SIGTERM.

Stopping the gateway stops its engines (uvicorn runs the app's shutdown, which stops every engine; an
engine also gets SIGTERM from the kernel if the gateway dies without that, see launch._die_with_parent).
"""

from __future__ import annotations

import ipaddress
import logging
import sys
import tempfile
from pathlib import Path

from tt_serve.config import ServerConfig, load_config
from tt_serve.gateway.settings import GatewaySettings

SHUTDOWN_GRACE_S = 10  # open streams get this long before uvicorn closes them


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run_gateway(config_path: str | None, host: str | None, port: int | None, admin_token: str | None) -> int:
    import uvicorn

    from tt_serve.gateway.app import create_app
    from tt_serve.gateway.manager import Manager

    config = load_config(Path(config_path).resolve()) if config_path else ServerConfig()
    settings = config.gateway or GatewaySettings()
    host = host or settings.host
    port = port or settings.port
    if settings.log_dir:
        log_dir = Path(settings.log_dir).expanduser()
        log_dir.mkdir(parents=True, exist_ok=True)
    else:
        log_dir = Path(tempfile.mkdtemp(prefix="tt-serve-gateway-"))

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s tt-serve gateway %(levelname)s: %(message)s"))
    logger = logging.getLogger("tt_serve.gateway")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.info(
        "%d model(s) configured; engine logs in %s; admin API %s",
        len(settings.models),
        log_dir,
        "enabled (bearer token)" if admin_token else "read-only (no admin token)",
    )
    if not _is_loopback(host):
        logger.warning(
            "listening on %s: the OpenAI API and the read-only console are open to that network "
            "(no authentication); put the gateway behind your load balancer or proxy",
            host,
        )

    extra = {}
    if settings.cluster is not None:  # only cluster mode imports Ray (tt-serve[ray])
        try:
            import ray.serve  # noqa: F401

            from tt_serve.cluster.engine import cluster_manager_args
        except ImportError as error:
            logger.error("[gateway.cluster] needs Ray: pip install 'tt-serve[ray]' (%s)", error)
            return 3
        extra = cluster_manager_args(settings, config.path, config.catalog(), log_dir)
        logger.info(
            "cluster mode: Ray at %s, Ray Serve's proxy on 127.0.0.1:%d",
            settings.cluster.address,
            settings.cluster.serve_port,
        )
    manager = Manager(settings, config.path, log_dir, **extra)
    app = create_app(manager, admin_token or None)
    uvicorn.run(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=SHUTDOWN_GRACE_S)
    return 0
