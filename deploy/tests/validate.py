"""Validates every manifest under deploy/ against Kubernetes' schemas, in
strict mode (an unknown field is an error), for Kubernetes 1.28 and for the
newest version the kubernetes-validate package ships.

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
    failures = checked = 0
    for path in sorted(root.rglob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for resource in yaml.safe_load_all(path.read_text()):
            if resource is None:
                continue
            name = f"{path.relative_to(root)} {resource.get('kind')}/{resource['metadata']['name']}"
            for version in VERSIONS:
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
