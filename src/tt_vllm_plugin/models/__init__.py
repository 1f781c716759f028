"""Models behind the TT model contract: host (PyTorch) implementations and tt-metal's, by architecture."""
