"""Gemma 3 text (``Gemma3ForCausalLM``) on the host device: ``architectures.py`` (the TT class),
``model.py`` (which configs it takes, loading), ``decoder.py`` (the math), ``weights.py``."""
