"""The Kubernetes manifests in deploy/kubernetes/, checked against the Kubernetes schemas with
kubernetes-validate (PyPI; its schemas ship inside the package, nothing is downloaded) in strict mode
(unknown fields are errors), for every Kubernetes release the manifests claim (DRA's resource.k8s.io/v1
is GA from 1.34). KubeRay's RayCluster has no schema there: each of its pod templates is validated as a
core PodTemplate instead. Then what the manifests promise: the card claimed through DRA by the
container that runs the engines, updates that free the card first, probes on /health and /v1/models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

MANIFESTS = sorted((Path(__file__).resolve().parents[2] / "deploy" / "kubernetes").glob("*.yaml"))
VERSIONS = ("1.34.0", "1.37.0")
CUSTOM = {("ray.io/v1", "RayCluster")}


def _documents() -> list[tuple[str, dict[str, Any]]]:
    return [(path.name, doc) for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text()) if doc]


def _pod_templates(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc.get("spec", {})
    if doc["kind"] == "RayCluster":
        return [spec["headGroupSpec"]["template"], *(g["template"] for g in spec["workerGroupSpecs"])]
    return [spec["template"]] if "template" in spec else []


def test_there_are_manifests() -> None:
    assert [p.name for p in MANIFESTS] == ["cluster.yaml", "model.yaml"]


@pytest.mark.parametrize("version", VERSIONS)
def test_every_object_is_valid_against_the_kubernetes_schemas(version: str) -> None:
    for _name, doc in _documents():
        if (doc["apiVersion"], doc["kind"]) in CUSTOM:
            for i, template in enumerate(_pod_templates(doc)):
                wrapped = {
                    "apiVersion": "v1",
                    "kind": "PodTemplate",
                    "metadata": {"name": f"{doc['metadata']['name']}-{i}"},
                    "template": template,
                }
                kubernetes_validate.validate(wrapped, version, strict=True)
            continue
        kubernetes_validate.validate(doc, version, strict=True)  # raises ValidationError with the path


def test_the_validator_rejects_a_wrong_manifest() -> None:
    """The check is real: a misspelt field and a wrong type are refused."""
    deployment = next(d for _, d in _documents() if d["kind"] == "Deployment")
    wrong = {**deployment, "spec": {**deployment["spec"], "strategie": {"type": "Recreate"}}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong, VERSIONS[0], strict=True)
    wrong = {**deployment, "spec": {**deployment["spec"], "replicas": "one"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong, VERSIONS[0], strict=True)


def test_cards_are_claimed_and_freed_before_a_replacement_starts() -> None:
    docs = _documents()
    templates = {d["metadata"]["name"] for _, d in docs if d["kind"] == "ResourceClaimTemplate"}
    for _, doc in docs:
        for template in _pod_templates(doc):
            claims = template["spec"].get("resourceClaims", [])
            for claim in claims:
                assert claim["resourceClaimTemplateName"] in templates
                users = [
                    c
                    for c in template["spec"]["containers"]
                    if {"name": claim["name"]} in c.get("resources", {}).get("claims", [])
                ]
                assert len(users) == 1, "exactly one container holds the card"
        if doc["kind"] == "Deployment" and _pod_templates(doc)[0]["spec"].get("resourceClaims"):
            assert doc["spec"]["strategy"] == {"type": "Recreate"}  # the old pod frees the card first
    for _, doc in docs:
        if doc["kind"] == "ResourceClaimTemplate":
            (request,) = doc["spec"]["spec"]["devices"]["requests"]
            assert request["exactly"]["deviceClassName"] == "tenstorrent.com"


def test_probes_are_on_health_and_models() -> None:
    found = []
    for _, doc in _documents():
        for template in _pod_templates(doc):
            for container in template["spec"]["containers"]:
                if "command" in container and "gateway" in container["command"]:
                    probes = {
                        k: container[k]["httpGet"]["path"]
                        for k in ("startupProbe", "readinessProbe", "livenessProbe")
                    }
                    assert probes["startupProbe"].startswith("/health")
                    assert probes["readinessProbe"].startswith("/health")
                    assert probes["livenessProbe"] == "/v1/models"
                    found.append(doc["metadata"]["name"])
    assert sorted(found) == ["tt-serve", "tt-serve-llama"]
