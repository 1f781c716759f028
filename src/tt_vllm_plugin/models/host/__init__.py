"""The host device's models: our PyTorch implementations of the TT model contract, one package or module
per family (``llama/``), on shared layers (paged attention with its two backends, RoPE, linear layers and
fused elementwise kernels, checkpoint loading). They are the reference every family is checked against:
token-identical to transformers."""
