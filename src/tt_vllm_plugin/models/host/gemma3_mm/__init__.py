"""Gemma 3 with images on the host device (``model.py``)."""
