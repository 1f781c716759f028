"""tt-serve gateway: one OpenAI-compatible front door for several vLLM engines, one engine process per model.

vLLM activates one platform plugin per process, so a service that mixes backends (metal, forge, host),
or swaps one for another, runs each model in an engine of its own (started through tt-serve's launch
path: resolution, checks, narrowing) and routes requests by their ``model``. Modules:

- ``settings``: the ``[gateway]`` config section;
- ``engine``: prepare (``tt-serve serve --dry-run --json``), start, health-wait and stop one engine;
- ``manager``: the models, their current engines, add / remove / swap with a bounded drain;
- ``proxy``: the ``/v1`` routes (streaming passed through unbuffered);
- ``metrics`` and ``events``: what the console shows;
- ``auth``: the admin bearer token;
- ``app``: the FastAPI application; ``server``: runs it with uvicorn; ``client``: ``tt-serve swap``.
"""
