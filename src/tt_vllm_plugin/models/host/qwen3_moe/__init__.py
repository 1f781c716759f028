"""Qwen3-MoE on the host device: the Llama-family decoder with Qwen3's attention (per-head q/k norm)
and mixture-of-experts layers (``host/moe.py``): ``architectures.py`` (the class), ``weights.py`` (which
layers are sparse, and their experts' tensors)."""
