"""vLLM v1 worker side: TTWorker, TTModelRunner and the persistent input batch."""
