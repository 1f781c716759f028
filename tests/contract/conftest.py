"""What the conformance suite checks: the subjects (model class + device + checkpoint) and how closely.

By default every host model in the registry, plus the tt-metal adapter wrapped around the host Llama
(the adapter's argument plumbing is exercised here; its behaviour with real tt-metal is not), each on
a tiny random-weight checkpoint, compared with transformers at fp32 tolerances.

Pointed at any other model (a Tenstorrent developer, on hardware):

    MESH_DEVICE=N150 HF_MODEL=/path/to/Llama-3.1-8B-Instruct pytest tests/contract \\
        --tt-model models.ttt_compat.tt.generator_vllm:LlamaForCausalLM --tt-device ttnn \\
        --hf-model /path/to/Llama-3.1-8B-Instruct [--tt-options '{"trace_mode": "none"}'] [--n-layers 2]

``--tt-model`` also takes a model you bring (see ``resolve_target``): a bundle folder written for
Tenstorrent's plugin (``tests/fixtures/byo_models/bundles/llama_bundle``) or ``path/to/module.py:Class``.

On the ttnn device the class is wrapped in the same adapter the runner uses, the mesh is opened through
device/ttnn.py, and logits are compared by Pearson correlation (``--pcc``, default 0.99).
"""

from __future__ import annotations

import functools
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.contract.helpers import pcc
from tests.e2e.random_models import architecture_configs, save_random_model
from tt_vllm_plugin.activation import DeviceChoice
from tt_vllm_plugin.device.host import HostDevice
from tt_vllm_plugin.device.mesh import kv_heads_per_device
from tt_vllm_plugin.models import registry, user_models
from tt_vllm_plugin.models.contract import takes_images
from tt_vllm_plugin.models.tt_metal import adapter as tt_metal_adapter
from tt_vllm_plugin.models.tt_metal import generators
from tt_vllm_plugin.options import TTOptions

HOST_TOLERANCE = 1e-4  # fp32 on the host: the same math as transformers, up to summation order


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tt-contract", "TT model contract conformance (tests/contract)")
    group.addoption(
        "--tt-model",
        default=None,
        help="module:Class, path/to/module.py:Class or a bundle folder to check (default: every host model)",
    )
    group.addoption("--tt-device", default="host", choices=["host", "ttnn"], help="device to run it on")
    group.addoption(
        "--hf-model", default=None, help="Hugging Face checkpoint folder (default: tiny random checkpoints)"
    )
    group.addoption("--tt-options", default="{}", help="TT options (JSON) for opening the ttnn mesh")
    group.addoption("--block-size", type=int, default=None, help="KV block size (default: host 16, ttnn 64)")
    group.addoption("--max-batch", type=int, default=8, help="max_batch_size (decode slots)")
    group.addoption(
        "--max-seq-len", type=int, default=None, help="max_seq_len (default: host 128, ttnn 2048)"
    )
    group.addoption("--n-layers", type=int, default=None, help="build model and reference with fewer layers")
    group.addoption("--pcc", type=float, default=0.99, help="minimum logits correlation off the host device")


def _option(config: pytest.Config, name: str, default: Any = None) -> Any:
    # pytest only registers these options when this conftest is loaded at start-up (tests/contract is
    # named on the command line); otherwise the defaults apply.
    return config.getoption(name, default=default)


@dataclass(frozen=True)
class SubjectSpec:
    id: str
    target: str  # "module:Class"
    adapt: bool  # wrap in tt_metal_adapter.adapter_for, as the registry does on the ttnn device
    hf_arch: str | None  # architecture of the random checkpoint when no --hf-model is given


def subject_specs(config: pytest.Config) -> list[SubjectSpec]:
    target = _option(config, "--tt-model")
    device = _option(config, "--tt-device", "host")
    if target is None:
        if device != "host":
            raise pytest.UsageError("--tt-device ttnn needs --tt-model (and --hf-model)")
        host = registry.implementations(DeviceChoice.HOST)
        # Classes that take images (prefill returns (logits, rope_deltas), the reference is a
        # vision-language model) are checked with images in tests/e2e/test_images_*.py instead.
        specs = [
            SubjectSpec(name, path, False, name.removeprefix("TT"))
            for name, path in sorted(host.items())
            if not takes_images(registry.load_model_class(name, DeviceChoice.HOST))
        ]
        return specs + [
            SubjectSpec("adapter-TTLlamaForCausalLM", host["TTLlamaForCausalLM"], True, "LlamaForCausalLM")
        ]
    target, hf_arch = resolve_target(target)
    return [SubjectSpec(target, target, device == "ttnn", hf_arch)]


def resolve_target(raw: str) -> tuple[str, str | None]:
    """``--tt-model`` as ``(module:Class, architecture of the random checkpoint or None)``. Accepted: a
    bundle folder (Tenstorrent's ``vllm_metadata.json``: its folder goes on ``sys.path``, its ``arch`` is
    the architecture), ``path/to/module.py:Class`` (its folder goes on ``sys.path``) or an importable
    ``module:Class``. Without a bundle's ``arch``, the architecture is the first class of the model's MRO
    whose name (without ``TT``) has a random config, so a thin subclass of a host model needs no
    ``--hf-model``."""
    if Path(raw).is_dir():
        arch, target = user_models.bundle_target(raw)
        arch = arch.removeprefix("TT")
        return target, arch if arch in architecture_configs() else None
    module, _, name = raw.rpartition(":")
    if module.endswith(".py") or "/" in module:
        path = Path(module).resolve()
        if str(path.parent) not in sys.path:
            sys.path.append(str(path.parent))
        raw = f"{path.stem}:{name}"
    try:
        cls = generators.load_generator_class(raw)
    except (ImportError, AttributeError, ValueError):
        return raw, None  # reported when the subject is built
    known = architecture_configs()
    arch = next(
        (c.__name__.removeprefix("TT") for c in cls.__mro__ if c.__name__.removeprefix("TT") in known), None
    )
    return raw, arch


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "subject" in metafunc.fixturenames:
        specs = subject_specs(metafunc.config)
        metafunc.parametrize("subject", specs, ids=[s.id for s in specs], indirect=True, scope="session")


@dataclass
class Subject:
    """One model class on one device with one checkpoint, built once and shared by the tests."""

    spec: SubjectSpec
    model_cls: type
    device: Any  # HostDevice, or an open TTNNDevice
    checkpoint: Path
    block_size: int
    max_batch: int
    max_seq_len: int
    n_layers: int | None
    on_host: bool
    min_pcc: float
    _model: Any = field(default=None, repr=False)
    _reference: Any = field(default=None, repr=False)

    @functools.cached_property
    def hf_config(self) -> Any:
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(self.checkpoint)

    @property
    def vocab_size(self) -> int:
        return int(self.hf_config.vocab_size)

    @property
    def num_layers(self) -> int:
        layers = int(self.hf_config.num_hidden_layers)
        return min(layers, self.n_layers) if self.n_layers else layers

    @property
    def capabilities(self) -> dict[str, Any]:
        return dict(getattr(self.model_cls, "model_capabilities", None) or {})

    def model(self) -> Any:
        if self._model is None:
            self._model = self.model_cls.initialize_vllm_model(
                self.hf_config, self.device, self.max_batch, self.max_seq_len, n_layers=self.n_layers
            )
        return self._model

    def kv_cache(self, num_blocks: int) -> Any:
        config = self.hf_config
        heads = int(config.num_attention_heads)
        kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
        head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // heads)
        # Per device, as the runner allocates it (tt-metal replicates the shape on every device).
        per_device = kv_heads_per_device(kv_heads, self.device.devices_per_submesh)
        shape = (num_blocks, per_device, self.block_size, head_dim)
        # The runner passes the model dtype; tt-metal converts to its own KV dtype on the device.
        dtype = getattr(self.device, "dtype", torch.bfloat16)
        return self.model().allocate_kv_cache(shape, dtype, self.num_layers)

    def reference_logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """transformers' logits at every position of ``tokens`` (1-D), (len, vocab) float32."""
        if self._reference is None:
            from transformers import AutoModelForCausalLM

            extra = {"num_hidden_layers": self.n_layers} if self.n_layers else {}
            self._reference = AutoModelForCausalLM.from_pretrained(
                self.checkpoint,
                dtype=torch.float32,
                attn_implementation="eager",
                experts_implementation="eager",  # transformers 5 picks grouped_mm otherwise
                **extra,
            ).eval()
        with torch.inference_mode():
            return self._reference(tokens[None]).logits[0].float()

    def assert_close(self, actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
        """Logits agree with the reference: fp32 tolerances on the host, correlation elsewhere.
        Extra columns (a vocabulary padded for the device) are ignored."""
        actual = actual[..., : expected.shape[-1]].float().cpu()
        if self.on_host:
            torch.testing.assert_close(actual, expected, atol=HOST_TOLERANCE, rtol=HOST_TOLERANCE, msg=what)
        else:
            value = pcc(actual, expected)
            assert value >= self.min_pcc, f"{what}: logits correlation {value:.4f} < {self.min_pcc}"


@pytest.fixture(scope="session")
def ttnn_mesh(request):
    from tt_vllm_plugin.device.ttnn import close_ttnn_device, open_ttnn_device, ttnn_availability

    usable, why = ttnn_availability()
    if not usable:
        pytest.fail(f"--tt-device ttnn: no Tenstorrent device is usable: {why}", pytrace=False)
    raw = json.loads(_option(request.config, "--tt-options", "{}"))
    device = open_ttnn_device(TTOptions.from_mapping(raw, "--tt-options"))
    yield device
    close_ttnn_device(device)


@pytest.fixture(scope="session")
def subject(request, tmp_path_factory) -> Subject:
    spec: SubjectSpec = request.param
    config = request.config
    on_host = _option(config, "--tt-device", "host") == "host"
    checkpoint = _option(config, "--hf-model")
    if checkpoint is None:
        if spec.hf_arch is None:
            raise pytest.UsageError(f"--hf-model is needed to check {spec.target}")
        checkpoint = save_random_model(spec.hf_arch, tmp_path_factory.mktemp(spec.hf_arch))
    try:
        cls = generators.load_generator_class(spec.target)
    except (ImportError, AttributeError) as error:
        pytest.fail(f"cannot load {spec.target}: {type(error).__name__}: {error}", pytrace=False)
    if spec.adapt:
        cls = tt_metal_adapter.adapter_for(cls)
    device = (
        HostDevice(torch.device("cpu"), torch.float32) if on_host else request.getfixturevalue("ttnn_mesh")
    )
    return Subject(
        spec=spec,
        model_cls=cls,
        device=device,
        checkpoint=Path(checkpoint),
        block_size=_option(config, "--block-size") or (16 if on_host else 64),
        max_batch=_option(config, "--max-batch", 8),
        max_seq_len=_option(config, "--max-seq-len") or (128 if on_host else 2048),
        n_layers=_option(config, "--n-layers"),
        on_host=on_host,
        min_pcc=_option(config, "--pcc", 0.99),
    )
