"""Validates every manifest under deploy/ against Kubernetes' schemas, in
strict mode (an unknown field is an error), for Kubernetes 1.28 and for the
newest version the kubernetes-validate package ships; what exists only in
newer releases (DRA's resource.k8s.io/v1 from 1.34, admission policies'
v1 from 1.30) against that release instead of 1.28. The DRA overlay's
DaemonSet is validated as its JSON patch makes it.

    python3 deploy/tests/validate.py

NetworkAttachmentDefinitions are a CRD (Multus's), which the package has no
schema for: their metadata is checked as any object's metadata, the rest
against the CRD's schema, and spec.config must be a JSON object.
"""
import json
import pathlib
import sys

import jsonschema
import kubernetes_validate
import yaml

VERSIONS = ["1.28.0", kubernetes_validate.latest_version()]

# The first release serving these APIs, by apiVersion (and kind).
FIRST = {
    "resource.k8s.io/v1": "1.34.0",
    ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy"): "1.30.0",
    ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding"): "1.30.0",
}


def versions(resource):
    api = resource.get("apiVersion")
    first = FIRST.get(api) or FIRST.get((api, resource.get("kind")))
    if resource.get("kind") == "Pod" and "resourceClaims" in resource.get("spec", {}):
        first = "1.34.0"  # a pod's claims took their GA shape with DRA's v1
    return [first, VERSIONS[-1]] if first else VERSIONS


def patched(resource, patch):
    """`resource` with a JSON patch's add and replace operations applied."""
    resource = json.loads(json.dumps(resource))
    for op in patch:
        parent, last = op["path"].rsplit("/", 1)
        target = resource
        for key in filter(None, parent.split("/")):
            target = target[int(key)] if isinstance(target, list) else target[key]
        if isinstance(target, list) and last == "-":
            target.append(op["value"])
        elif op["op"] in ("add", "replace"):
            target[last] = op["value"]
        else:
            raise ValueError(f"{op['op']} {op['path']} is not applied here")
    return resource

# Multus's CRD, k8s.cni.cncf.io/v1 NetworkAttachmentDefinition, made strict.
NAD_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "k8s.cni.cncf.io/v1"},
        "kind": {"const": "NetworkAttachmentDefinition"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"config": {"type": "string"}},
        },
    },
}


def check_nad(resource, version):
    jsonschema.validate(resource, NAD_SCHEMA)
    config = json.loads(resource["spec"]["config"])
    if not isinstance(config, dict):
        raise ValueError("spec.config is not a JSON object")
    carrier = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": resource["metadata"]}
    kubernetes_validate.validate(carrier, version, strict=True)


def main():
    root = pathlib.Path(__file__).resolve().parent.parent
    documents = []
    for path in sorted(root.rglob("*.yaml")):
        if path.name in ("kustomization.yaml", "daemonset-patch.yaml"):
            continue
        for resource in yaml.safe_load_all(path.read_text()):
            if resource is not None:
                documents.append((str(path.relative_to(root)), resource))
    base = yaml.safe_load((root / "base" / "daemonset.yaml").read_text())
    patch = yaml.safe_load((root / "dra" / "daemonset-patch.yaml").read_text())
    documents.append(("dra/daemonset-patch.yaml applied", patched(base, patch)))
    failures = checked = 0
    for where, resource in documents:
        name = f"{where} {resource.get('kind')}/{resource['metadata']['name']}"
        for version in versions(resource):
            checked += 1
            try:
                if resource.get("kind") == "NetworkAttachmentDefinition":
                    check_nad(resource, version)
                else:
                    kubernetes_validate.validate(resource, version, strict=True)
            except Exception as e:  # every kind of failure is reported alike
                failures += 1
                print(f"validate: {name} against {version}: {str(e).splitlines()[0]}", file=sys.stderr)
    print(f"validate: {checked - failures} of {checked} checks passed ({', '.join(VERSIONS)})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
