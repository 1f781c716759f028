"""Which ``ttnn`` names and calls our source uses (``used.py``, an AST walk, no ttnn needed), and the check of
them against the real ttnn, imported (``live.py``; tests/real_ttnn/test_names.py runs it in .venv-ttnn)."""
