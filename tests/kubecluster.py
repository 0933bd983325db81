"""A real Kubernetes control plane for the tests: etcd and kube-apiserver on 127.0.0.1.

Both are the real programs (built by `make test-binaries` from tools/kubecluster), started
with what a cluster's API server runs with: TLS everywhere (a CA, serving and client
certificates made here), client-certificate authentication, RBAC, the default admission
plugins with PodSecurity, and a service-account issuer with its signing key, so the
TokenRequest API gives real tokens. When `make test-binaries` built it, kube-controller-manager
runs the controllers in CONTROLLERS (garbage collection, namespaces, service accounts,
Deployments to ReplicaSets to Pods, Jobs, CronJobs). What is missing is everything that runs
pods: there is no kubelet or scheduler, so pods stay Pending; objects are created, validated,
defaulted, admitted, authorised and garbage-collected as on a cluster.

`ControlPlane.start(folder)` returns once `/readyz` answers; `stop()` ends both process
groups. Ports are free ones on 127.0.0.1, chosen at start.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import shutil
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from components.deploy.local_serving import free_port

REPO = Path(__file__).resolve().parents[1]
SCHEMAS = REPO.parent / "shared" / "schemas"
"""The upstream CRDs (KFP, Seldon, PyTorchJob, TrainJob) installed as they are."""
CONTROLLERS = (
    "garbagecollector",  # owned objects go with their owner (a RetrainPolicy's CronJob)
    "namespace",  # a deleted namespace is emptied and goes
    "serviceaccount",  # every namespace gets its `default` ServiceAccount
    "deployment",  # Deployments -> ReplicaSets -> Pods, judged by Pod Security admission
    "replicaset",
    "job",
    "cronjob",
)
"""kube-controller-manager's controllers the tests run (no node, cloud or certificate ones)."""
START_TIMEOUT = 120.0
"""Seconds for etcd and then the API server to answer; the API server's first start here took ~10 s."""


@dataclass
class _Pair:
    key: Path
    cert: Path


def _write_key(path: Path, key: Any) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    path.chmod(0o600)


class _Authority:
    """A throwaway CA that signs the control plane's serving and client certificates."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubeloop-test-ca")])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )
        self.path = folder / "ca.crt"
        self.path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, name: str, common_name: str, groups: tuple[str, ...] = (), server: bool = False) -> _Pair:
        """A key and certificate: for a server (127.0.0.1, localhost) or a client (CN = user, O = groups)."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name(
            [x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups]
            + [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
        )
        now = datetime.datetime.now(datetime.UTC)
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH] + ([ExtendedKeyUsageOID.SERVER_AUTH] if server else [])
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        )
        if server:
            names = [
                x509.DNSName("localhost"),
                x509.DNSName("kubernetes.default.svc"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            ]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        pair = _Pair(self.folder / f"{name}.key", self.folder / f"{name}.crt")
        _write_key(pair.key, key)
        pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return pair


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@dataclass
class ControlPlane:
    """A running etcd + kube-apiserver, and how to reach them as the cluster admin."""

    folder: Path
    server: str = ""
    kubeconfig: Path = field(default_factory=Path)
    ca: Path = field(default_factory=Path)
    admin: _Pair | None = None
    etcd: subprocess.Popen[bytes] | None = None
    apiserver: subprocess.Popen[bytes] | None = None
    controllers: subprocess.Popen[bytes] | None = None
    prerequisites: bool = False

    @classmethod
    def start(cls, binaries: Path, folder: Path) -> ControlPlane:
        """Start etcd, then the API server; stopped again when either fails to come up."""
        plane = cls(folder)
        try:
            plane._start(binaries)
        except BaseException:
            plane.stop()
            raise
        return plane

    def _start(self, binaries: Path) -> None:
        pki = self.folder / "pki"
        pki.mkdir(parents=True)
        authority = _Authority(pki)
        self.ca = authority.path
        etcd_server = authority.issue("etcd", "etcd", server=True)
        etcd_client = authority.issue("apiserver-etcd-client", "kube-apiserver-etcd-client")
        apiserver = authority.issue("apiserver", "kube-apiserver", server=True)
        self.admin = authority.issue("admin", "kubernetes-admin", groups=("system:masters",))
        signing = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        _write_key(pki / "sa.key", signing)
        (pki / "sa.pub").write_bytes(
            signing.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        client_port, peer_port, api_port = free_port(), free_port(), free_port()
        etcd_url = f"https://127.0.0.1:{client_port}"
        self.etcd = self._launch(
            "etcd",
            [
                str(binaries / "etcd"),
                "--name=test",
                f"--data-dir={self.folder / 'etcd-data'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=test=http://127.0.0.1:{peer_port}",
                "--listen-metrics-urls=",
                f"--cert-file={etcd_server.cert}",
                f"--key-file={etcd_server.key}",
                f"--trusted-ca-file={self.ca}",
                "--client-cert-auth",
                "--unsafe-no-fsync",  # a test cluster: etcd's fsyncs cost seconds on a shared disk
                "--log-level=warn",
            ],
        )
        self.server = f"https://127.0.0.1:{api_port}"
        self.apiserver = self._launch(
            "kube-apiserver",
            [
                str(binaries / "kube-apiserver"),
                f"--etcd-servers={etcd_url}",
                f"--etcd-cafile={self.ca}",
                f"--etcd-certfile={etcd_client.cert}",
                f"--etcd-keyfile={etcd_client.key}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                f"--cert-dir={pki}",
                f"--tls-cert-file={apiserver.cert}",
                f"--tls-private-key-file={apiserver.key}",
                f"--client-ca-file={self.ca}",
                "--authorization-mode=RBAC",
                "--enable-admission-plugins=NamespaceLifecycle,ServiceAccount,PodSecurity,LimitRanger,"
                "ResourceQuota,DefaultStorageClass,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,"
                "ValidatingAdmissionPolicy",
                "--allow-privileged=false",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-cluster-ip-range=10.96.0.0/16",
                "--profiling=false",
                "--v=1",
            ],
        )
        self.kubeconfig = self.folder / "kubeconfig"
        self.kubeconfig.write_text(yaml.safe_dump(self.config_for("kubernetes-admin", cert=self.admin)))
        self._wait_ready()
        if (binaries / "kube-controller-manager").exists():
            self.controllers = self._launch(
                "kube-controller-manager",
                [
                    str(binaries / "kube-controller-manager"),
                    f"--kubeconfig={self.kubeconfig}",  # the admin: every controller's rights at once
                    "--leader-elect=false",
                    "--secure-port=0",  # no serving endpoint: nothing here scrapes it
                    f"--controllers={','.join(CONTROLLERS)}",
                    f"--service-account-private-key-file={pki / 'sa.key'}",
                    f"--root-ca-file={self.ca}",
                    "--use-service-account-credentials=false",
                    "--v=1",
                ],
            )

    def _launch(self, name: str, command: list[str]) -> subprocess.Popen[bytes]:
        log = (self.folder / f"{name}.log").open("wb")
        try:
            return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()

    def log_tail(self, name: str, chars: int = 3000) -> str:
        """The end of a program's log (etcd, kube-apiserver), for failure messages."""
        path = self.folder / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"

    def _wait_ready(self) -> None:
        context = self.ssl_context()
        deadline = time.monotonic() + START_TIMEOUT
        last = ""
        while time.monotonic() < deadline:
            for name, process in (("etcd", self.etcd), ("kube-apiserver", self.apiserver)):
                if process is not None and process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode}:\n{self.log_tail(name)}")
            try:
                with urllib.request.urlopen(f"{self.server}/readyz", timeout=5, context=context) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, OSError) as error:
                last = str(error)
            time.sleep(0.5)
        raise RuntimeError(
            f"kube-apiserver not ready within {START_TIMEOUT:.0f} s ({last}):\n"
            + self.log_tail("kube-apiserver")
        )

    def ssl_context(self) -> ssl.SSLContext:
        """TLS to the API server as the cluster admin (verifying the server against the CA)."""
        context = ssl.create_default_context(cafile=str(self.ca))
        assert self.admin is not None
        context.load_cert_chain(str(self.admin.cert), str(self.admin.key))
        return context

    def config_for(self, user: str, cert: _Pair | None = None, token: str | None = None) -> dict[str, Any]:
        """A kubeconfig for `user`, authenticated by a client certificate or a bearer token."""
        credentials: dict[str, str] = {"token": token} if token else {}
        if cert is not None:
            credentials = {"client-certificate": str(cert.cert), "client-key": str(cert.key)}
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "test", "cluster": {"server": self.server, "certificate-authority": str(self.ca)}}
            ],
            "users": [{"name": user, "user": credentials}],
            "contexts": [{"name": user, "context": {"cluster": "test", "user": user}}],
            "current-context": user,
        }

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One API call as the admin: (status, parsed JSON body)."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.server}{path}", data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=30, context=self.ssl_context()) as reply:
                return reply.status, json.loads(reply.read() or b"{}")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def kubectl(self, *args: str, stdin: str | None = None, kubeconfig: Path | None = None) -> str:
        """kubectl as the cluster admin (or with another kubeconfig); a failure raises with what
        kubectl printed."""
        done = self.kubectl_run(*args, stdin=stdin, kubeconfig=kubeconfig)
        if done.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-4000:]}"
            )
        return done.stdout

    def kubectl_run(
        self, *args: str, stdin: str | None = None, kubeconfig: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """kubectl as `kubectl`, whatever its exit status."""
        from tests.conftest import tool

        return subprocess.run(
            [tool("kubectl"), f"--kubeconfig={kubeconfig or self.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    def install_prerequisites(self) -> None:
        """What the cluster guide asks a cluster to have (once per control plane): Kubeflow's namespace
        and the shared upstream CRDs as they are (KFP Pipeline/PipelineVersion, SeldonDeployment,
        PyTorchJob, TrainJob), established."""
        if self.prerequisites:
            return
        self.kubectl("create", "namespace", "kubeflow")
        for path in sorted(SCHEMAS.glob("*.yaml")):
            self.kubectl("apply", "--server-side", "-f", str(path))
        self.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
        self.prerequisites = True

    def apply_kustomization(self, folder: Path) -> str:
        """The documented install: kubeloop's CRDs first and established (the base also creates a
        KopfPeering, which one apply cannot do in the same breath as its CRD), then the
        kustomization, server-side. Returns what the last apply printed."""
        crds = REPO / "manifests" / "base" / "crds.yaml"
        self.kubectl("apply", "--server-side", "-f", str(crds))
        self.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(crds))
        return self.kubectl("apply", "--server-side", "-k", str(folder))

    def stop(self) -> None:
        """Stop the controllers, the API server, then etcd (also when only some started)."""
        _stop(self.controllers)
        _stop(self.apiserver)
        _stop(self.etcd)
        shutil.rmtree(self.folder / "etcd-data", ignore_errors=True)  # its WAL preallocates 64 MB
