"""Devices the plugin can run models on: the host (PyTorch) and Tenstorrent hardware (ttnn)."""
