"""tt-serve: choose the vLLM plugin backend for a model and launch vLLM's OpenAI server with it."""
