"""Build the tests' servers from the Go module proxy, once per version: the control plane
(kube-apiserver, kube-controller-manager, etcd) and an S3 server (versitygw).

The Go sources are the project's own modules under tools/ (pinned by their go.mod and
go.sum). The binaries are kept outside the repository, in
`~/.cache/kubeloop/<toolset>-<version>-<hash of the module's files>/`, so a fresh clone on the
same machine (as CI is) reuses them; Go's own module and build caches (~/go/pkg/mod,
~/.cache/go-build) make a rebuild after a change quick.

    python scripts/test_binaries.py          # build what is missing, print the folders
    python scripts/test_binaries.py --where  # print the folders only

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
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("KUBELOOP_CACHE", Path.home() / ".cache" / "kubeloop"))


def required_version(module: Path, name: str) -> str:
    """The version of `name` that a module's go.mod requires."""
    for line in (module / "go.mod").read_text().splitlines():
        parts = line.split()
        if parts[:1] == [name] or parts[:2] == ["require", name]:
            return parts[parts.index(name) + 1]
    raise SystemExit(f"{module / 'go.mod'} requires no {name} version")


@dataclass(frozen=True)
class Toolset:
    """Programs built from one Go module under tools/."""

    name: str
    pinned: str  # the module whose version names the folder
    programs: dict[str, str]  # binary name -> package to build

    @property
    def module(self) -> Path:
        return REPO / "tools" / self.name

    @property
    def version(self) -> str:
        return required_version(self.module, self.pinned)

    def ldflags(self) -> str:
        """Stripped binaries that report their real version."""
        flags = ["-s", "-w"]
        if self.pinned == "k8s.io/kubernetes":
            # Kubernetes' own build stamps the version with -X (hack/lib/version.sh); without it
            # the server says v0.0.0-master, which a chart's kubeVersion constraint refuses.
            major, minor = self.version.removeprefix("v").split(".")[:2]
            stamps = {
                "gitVersion": self.version,
                "gitMajor": major,
                "gitMinor": minor,
                "gitTreeState": "clean",
            }
            packages = ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
            flags += [f"-X {p}.{k}={v}" for p in packages for k, v in stamps.items()]
        else:
            flags.append(f"-X main.Version={self.version}")
        return " ".join(flags)

    def _hash(self) -> str:
        digest = hashlib.sha256(self.ldflags().encode())
        for path in sorted(self.module.rglob("*")):
            if path.is_file() and (path.suffix == ".go" or path.name in ("go.mod", "go.sum")):
                digest.update(path.relative_to(self.module).as_posix().encode() + b"\0" + path.read_bytes())
        return digest.hexdigest()[:12]

    def location(self) -> Path:
        """The folder this checkout's binaries are (or will be) in."""
        return CACHE / f"{self.name}-{self.version}-{self._hash()}"

    def built(self) -> Path | None:
        """The folder when every program is built there, else None."""
        folder = self.location()
        return folder if all((folder / name).is_file() for name in self.programs) else None

    def build(self, go: str) -> Path:
        """Build whatever is missing; the folder of the binaries."""
        done = self.built()
        if done is not None:
            return done
        folder = self.location()
        partial = folder.with_name(folder.name + f".partial-{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        started = time.monotonic()
        env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=readonly -buildvcs=false"}
        try:
            for name, package in self.programs.items():
                print(f"building {name} ({self.version}) into {folder} ...", file=sys.stderr, flush=True)
                command = [go, "build", "-trimpath", f"-ldflags={self.ldflags()}", "-o", str(partial / name)]
                subprocess.run([*command, package], cwd=self.module, env=env, check=True)
            if folder.exists():  # another build finished first: keep it
                shutil.rmtree(partial)
            else:
                partial.rename(folder)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        print(f"built {', '.join(self.programs)} in {time.monotonic() - started:.0f} s", file=sys.stderr)
        return folder


KUBECLUSTER = Toolset(
    "kubecluster",
    "k8s.io/kubernetes",
    {name: f"./cmd/{name}" for name in ("kube-apiserver", "kube-controller-manager", "etcd")},
)
S3SERVER = Toolset(
    "s3server", "github.com/versity/versitygw", {"versitygw": "github.com/versity/versitygw/cmd/versitygw"}
)
TOOLSETS = (KUBECLUSTER, S3SERVER)


def build_all() -> list[Path]:
    """Build every toolset that is missing; their folders."""
    missing = [toolset for toolset in TOOLSETS if toolset.built() is None]
    go = shutil.which("go")
    if missing and go is None:
        raise SystemExit(
            "go not found: the tests' kube-apiserver, etcd and S3 server are built from the Go module "
            "proxy; install Go 1.25 or later (https://go.dev/doc/install) and run `make test-binaries`"
        )
    return [toolset.build(go or "go") for toolset in TOOLSETS]


def main(argv: list[str]) -> None:
    if argv[1:] == ["--where"]:
        print("\n".join(str(toolset.location()) for toolset in TOOLSETS))
        return
    try:
        print("\n".join(str(folder) for folder in build_all()))
    except subprocess.CalledProcessError as error:
        raise SystemExit(f"go build failed ({error}); the output above says why") from None


if __name__ == "__main__":
    main(sys.argv)
