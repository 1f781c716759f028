"""The Llama family (Llama, Mistral, Qwen2, Qwen3) on the host device: ``architectures.py`` (one class per
Hugging Face architecture), ``model.py`` (loading; the contract hooks are ``host/contract_hooks.py``'s),
``decoder.py`` (the math), ``weights.py`` (loading and packing the weights)."""
