"""GPT-OSS on the host device: the Llama-family decoder with attention sinks, biases, sliding and full
layers by ``layer_types``, YaRN RoPE and mixture-of-experts layers with clamped SwiGLU experts:
``architectures.py`` (the class), ``weights.py`` (the experts' checkpoint layout)."""
