"""tt-serve's cluster mode: the gateway in front of Ray Serve (``pip install 'tt-serve[ray]'``).

Each gateway model is a Ray Serve application of one deployment, :class:`replica.EngineReplica`, whose
replicas ask Ray for their cards (resource ``TTNPU``; Ray sets ``TT_VISIBLE_DEVICES`` in each replica)
and run the engine tt-serve runs on one host: ``tt-serve serve --dry-run --json`` on the replica's host
(resolution, the backend environment's checks), then that vLLM server, as a child process. Ray places
replicas, health-checks them (``check_health``), restarts them and rolls updates; the gateway keeps its
routes, health, metrics, console and the 503 + Retry-After while a model has no running replica
(:mod:`engine`). Only this package imports Ray.
"""
