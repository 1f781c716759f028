"""What the real ``ttnn`` wheel defines, read from the wheel file without installing it, and which ``ttnn``
names our source uses; tests/unit/test_ttnn_wheel_names.py compares the two."""
