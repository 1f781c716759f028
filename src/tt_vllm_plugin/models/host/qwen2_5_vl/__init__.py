"""Qwen2.5-VL on the host device (``model.py``)."""
