"""Makes an OCI runtime bundle that runs one container of the DaemonSet the
way kubelet would, on a fake node: the image's layers as the root
filesystem, the image's entrypoint with the container's own args, its
securityContext (user, capabilities, read-only root, no new privileges),
hostNetwork, and every volume mounted where the manifest mounts it, with
each hostPath taken from under NODE instead of /.

    bundle.py IMAGE_DIR NODE BUNDLE CONTAINER [ARG...]

IMAGE_DIR is an unpacked docker-archive (manifest.json, config, layers).
CONTAINER names an init container or a container of deploy/base/daemonset.yaml;
ARGs, if given, replace its command line (its mounts stay). The ConfigMap
volume is filled from deploy/base/configmap.yaml. Run the bundle with
`runc run --bundle BUNDLE ID`.
"""
import json
import pathlib
import subprocess
import sys
import tarfile

import yaml

DEPLOY = pathlib.Path(__file__).resolve().parent.parent


def unpack(image_dir, rootfs):
    manifest = json.loads((image_dir / "manifest.json").read_text())[0]
    for layer in manifest["Layers"]:
        with tarfile.open(image_dir / layer) as tar:
            tar.extractall(rootfs, filter="fully_trusted")
    return json.loads((image_dir / manifest["Config"]).read_text())["config"]


def find_container(spec, name):
    for list_name in ("initContainers", "containers"):
        for container in spec.get(list_name, []):
            if container["name"] == name:
                return container
    sys.exit(f"bundle: no container {name} in the DaemonSet")


def volume_source(volume, node, bundle):
    """Where a volume's content is on this machine, and whether to create it."""
    if "hostPath" in volume:
        source = node / volume["hostPath"]["path"].lstrip("/")
        if volume["hostPath"].get("type") == "DirectoryOrCreate":
            source.mkdir(parents=True, exist_ok=True)
        elif not source.exists():
            sys.exit(f"bundle: hostPath {volume['hostPath']['path']} is not on the node ({source})")
        return source
    if "configMap" in volume:
        configmap = yaml.safe_load((DEPLOY / "base" / "configmap.yaml").read_text())
        if configmap["metadata"]["name"] != volume["configMap"]["name"]:
            sys.exit(f"bundle: no ConfigMap {volume['configMap']['name']} in deploy/")
        source = bundle / "configmaps" / volume["name"]
        source.mkdir(parents=True, exist_ok=True)
        for item in volume["configMap"]["items"]:
            (source / item["path"]).write_text(configmap["data"][item["key"]])
        return source
    sys.exit(f"bundle: volume {volume['name']} is of a kind this test does not map")


def main():
    image_dir, node, bundle = (pathlib.Path(p).resolve() for p in sys.argv[1:4])
    name, override = sys.argv[4], sys.argv[5:]
    daemonset = yaml.safe_load((DEPLOY / "base" / "daemonset.yaml").read_text())
    spec = daemonset["spec"]["template"]["spec"]
    container = find_container(spec, name)
    image = unpack(image_dir, bundle / "rootfs")

    subprocess.run(["runc", "spec", "--bundle", str(bundle)], check=True)
    config = json.loads((bundle / "config.json").read_text())
    security = container.get("securityContext", {})
    process = config["process"]
    process["terminal"] = False
    process["args"] = override or image["Entrypoint"] + container.get("args", [])
    process["env"] = image.get("Env", [])
    process["cwd"] = image.get("WorkingDir") or "/"
    process["user"] = {"uid": security.get("runAsUser", 0), "gid": 0}
    process["noNewPrivileges"] = security.get("allowPrivilegeEscalation") is False
    if security.get("capabilities", {}).get("drop") == ["ALL"]:
        added = security["capabilities"].get("add", [])
        caps = [f"CAP_{c}" for c in added]
        process["capabilities"] = {k: list(caps) for k in ("bounding", "effective", "permitted")}
    # Setting these needs privileges this sandbox lacks (podman and a bare
    # `runc spec` fail alike); kubelet's runtime sets its own.
    process.pop("rlimits", None)
    config["root"] = {"path": "rootfs", "readonly": bool(security.get("readOnlyRootFilesystem"))}

    namespaces = config["linux"]["namespaces"]
    if spec.get("hostNetwork"):
        namespaces[:] = [n for n in namespaces if n["type"] != "network"]
    # The runtime's own /sys is replaced when the pod mounts the host's.
    mount_points = {m["mountPath"] for m in container.get("volumeMounts", [])}
    config["mounts"] = [
        m for m in config["mounts"]
        if not any(m["destination"] == p or m["destination"].startswith(p + "/") for p in mount_points)
    ]
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        source = volume_source(volumes[mount["name"]], node, bundle)
        config["mounts"].append({
            "destination": mount["mountPath"],
            "type": "bind",
            "source": str(source),
            "options": ["rbind", "ro" if mount.get("readOnly") else "rw"],
        })
    (bundle / "config.json").write_text(json.dumps(config, indent=2))


if __name__ == "__main__":
    main()
