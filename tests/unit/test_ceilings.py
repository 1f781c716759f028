"""benchmarks/ceilings.py: the weights a decode step reads are exactly the model's linear weights, and the
ceiling of a batch is the lower of its compute and memory bounds. (The timings themselves are benchmarks,
not tests.)"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

CEILINGS = Path(__file__).resolve().parents[2] / "benchmarks" / "ceilings.py"


@pytest.fixture(scope="module")
def ceilings():
    spec = importlib.util.spec_from_file_location("ceilings", CEILINGS)
    module = importlib.util.module_from_spec(spec)
    sys.modules["ceilings"] = module  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("ceilings", None)


def test_linear_shapes_cover_every_matrix_of_the_checkpoint(ceilings, default_model_path):
    """The embedded model's 2-D tensors (its tied embedding standing for the LM head) are the shapes."""
    from safetensors import safe_open
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(default_model_path)
    with safe_open(str(Path(default_model_path) / "model.safetensors"), "pt") as checkpoint:
        matrices = sum(
            checkpoint.get_slice(name).get_shape()[0] * checkpoint.get_slice(name).get_shape()[1]
            for name in checkpoint.keys()
            if len(checkpoint.get_slice(name).get_shape()) == 2
        )
    assert sum(n * k for n, k in ceilings.linear_shapes(config)) == matrices == 134_479_872


def test_the_ceiling_is_the_lower_bound_of_the_two(ceilings):
    found = ceilings.Ceilings(
        dtype="float32",
        compute_dtype="float32",
        threads=2,
        weight_bytes=538_060_032,
        read_gb_s=16.0,
        gemm_tok_s={32: 300.0, 1: 70.0},
        bandwidth_tok_s=29.7,
    )
    assert (found.ceiling(32), found.bound(32)) == (300.0, "compute")  # 29.7 x 32 = 950 tok/s of reads
    assert (found.ceiling(1), found.bound(1)) == (29.7, "memory")
