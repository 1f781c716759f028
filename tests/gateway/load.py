"""A bounded concurrent load for swap tests: N client threads send requests until stopped."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

import httpx

Result = TypeVar("Result")


class ClientLoad(Generic[Result]):
    """``with ClientLoad(send, clients=3) as load: ...``: each client calls ``send(client, i)`` in a loop
    (``i`` = worker, worker + clients, ...) and keeps what it returns; an exception (e.g. a dropped
    connection) is kept as an error. Stops on leaving the block, or after ``limit_s`` whatever happens."""

    def __init__(
        self, send: Callable[[httpx.Client, int], Result], clients: int = 3, limit_s: float = 900
    ) -> None:
        self.send, self.clients, self.limit_s = send, clients, limit_s
        self.results: list[tuple[float, Result]] = []  # (monotonic time it finished, result)
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, args=(w,)) for w in range(clients)]

    def _loop(self, worker: int) -> None:
        deadline = time.monotonic() + self.limit_s
        with httpx.Client(timeout=300) as client:
            i = worker
            while not self._stop.is_set() and time.monotonic() < deadline:
                try:
                    self.results.append((time.monotonic(), self.send(client, i)))
                except Exception as error:  # a dropped connection is a failure too
                    self.errors.append(f"{type(error).__name__}: {error}")
                i += self.clients

    def __enter__(self) -> ClientLoad[Result]:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=330)
