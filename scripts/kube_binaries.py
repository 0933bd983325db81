"""Build the tests' control plane (kube-apiserver and etcd) from the Go module proxy, once per version.

The Go sources are tools/kubecluster (the project's own module, pinned by its go.mod and
go.sum). The binaries are kept outside the repository, in
`~/.cache/kubeloop/kubecluster-<kubernetes version>-<hash of the module's files>/`, so a fresh
clone on the same machine (as CI is) reuses them; Go's own module and build caches
(~/go/pkg/mod, ~/.cache/go-build) make a rebuild after a change quick.

    python scripts/kube_binaries.py          # build what is missing, print the folder
    python scripts/kube_binaries.py --where  # print the folder only

A build goes to a temporary folder beside the final one and is renamed into place when every
binary is there: an interrupted build leaves nothing a test would mistake for a good one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODULE = REPO / "tools" / "kubecluster"
PROGRAMS = ("kube-apiserver", "kube-controller-manager", "etcd")
CACHE = Path(os.environ.get("KUBELOOP_CACHE", Path.home() / ".cache" / "kubeloop"))


def kubernetes_version() -> str:
    """The k8s.io/kubernetes version go.mod requires (v1.35.4)."""
    for line in (MODULE / "go.mod").read_text().splitlines():
        parts = line.split()
        if parts[:1] == ["k8s.io/kubernetes"] or parts[:2] == ["require", "k8s.io/kubernetes"]:
            return parts[-1]
    raise SystemExit(f"{MODULE / 'go.mod'} requires no k8s.io/kubernetes version")


def ldflags() -> str:
    """Stripped binaries that report their real version: Kubernetes' own build stamps it with
    -X (hack/lib/version.sh); without it the server says v0.0.0-master, which a chart's
    kubeVersion constraint refuses."""
    version = kubernetes_version()
    major, minor = version.removeprefix("v").split(".")[:2]
    stamps = {"gitVersion": version, "gitMajor": major, "gitMinor": minor, "gitTreeState": "clean"}
    packages = ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
    return " ".join(["-s", "-w"] + [f"-X {p}.{k}={v}" for p in packages for k, v in stamps.items()])


def _module_hash() -> str:
    digest = hashlib.sha256(ldflags().encode())
    for path in sorted(MODULE.rglob("*")):
        if path.is_file() and (path.suffix == ".go" or path.name in ("go.mod", "go.sum")):
            digest.update(path.relative_to(MODULE).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def location() -> Path:
    """The folder the binaries of this checkout's module are (or will be) in."""
    return CACHE / f"kubecluster-{kubernetes_version()}-{_module_hash()}"


def built() -> Path | None:
    """The folder when every program is built there, else None."""
    folder = location()
    return folder if all((folder / name).is_file() for name in PROGRAMS) else None


def build() -> Path:
    """Build whatever is missing; the folder of the binaries."""
    done = built()
    if done is not None:
        return done
    go = shutil.which("go")
    if go is None:
        raise SystemExit(
            "go not found: the tests' kube-apiserver and etcd are built from the Go module proxy; "
            "install Go 1.25 or later (https://go.dev/doc/install) and run `make kube-binaries`"
        )
    folder = location()
    partial = folder.with_name(folder.name + f".partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    started = time.monotonic()
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=readonly -buildvcs=false"}
    try:
        for name in PROGRAMS:
            print(f"building {name} ({kubernetes_version()}) into {folder} ...", file=sys.stderr, flush=True)
            subprocess.run(
                [
                    go,
                    "build",
                    "-trimpath",
                    f"-ldflags={ldflags()}",
                    "-o",
                    str(partial / name),
                    f"./cmd/{name}",
                ],
                cwd=MODULE,
                env=env,
                check=True,
            )
        if folder.exists():  # another build finished first: keep it
            shutil.rmtree(partial)
        else:
            partial.rename(folder)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    print(f"built {', '.join(PROGRAMS)} in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return folder


def main(argv: list[str]) -> None:
    if argv[1:] == ["--where"]:
        print(location())
        return
    try:
        print(build())
    except subprocess.CalledProcessError as error:
        raise SystemExit(f"go build failed ({error}); the output above says why") from None


if __name__ == "__main__":
    main(sys.argv)
