"""`helm test`'s checks: the operator answers its health endpoint; the store takes a round trip.

`python -m operators.selfcheck --operator-url URL --store URI` prints one line per check and
exits 1 if any failed, naming what to look at.
"""

from __future__ import annotations

import argparse
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable

from components.common.store import Store, open_store

Check = Callable[[], str]


def operator_health(url: str, wait_s: float = 60.0) -> Check:
    """GET kopf's /healthz until it answers 200 or `wait_s` has passed."""

    def check() -> str:
        deadline = time.monotonic() + wait_s
        last = ""
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    return f"{url} answered {response.status}"
            except (urllib.error.URLError, OSError) as error:
                last = str(getattr(error, "reason", error))
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"{url} did not answer within {wait_s:.0f} s ({last}): is the operator pod Ready "
                    "(kubectl get pods -l app.kubernetes.io/component=operator), and does a "
                    "NetworkPolicy let this pod in?"
                )
            time.sleep(2)

    return check


def store_round_trip(uri: str, opener: Callable[[str], Store] = open_store) -> Check:
    """Write a small object under .kubeloop-selfcheck/, read it back, delete it."""

    def check() -> str:
        store = opener(uri)
        key = f".kubeloop-selfcheck/{uuid.uuid4().hex}"
        payload = uuid.uuid4().bytes
        try:
            store.write_bytes(key, payload)
            if store.read_bytes(key) != payload:
                raise RuntimeError(f"{uri}/{key} read back different bytes than were written")
        finally:
            if store.exists(key):
                store.delete(key)
        return f"{uri} wrote, read back and deleted {key}"

    return check


def run_checks(checks: dict[str, Check], say: Callable[[str], None] = print) -> int:
    """Run every check (one failing does not stop the others); 0 when all passed."""
    failed = 0
    for name, check in checks.items():
        try:
            say(f"ok    {name}: {check()}")
        except Exception as error:  # noqa: BLE001 - a check reports any failure as its line
            failed += 1
            say(f"FAIL  {name}: {error}")
    say(f"{len(checks) - failed}/{len(checks)} checks passed")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """CLI of the chart test."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--operator-url", required=True, help="kopf's liveness URL, e.g. http://svc:8080/healthz"
    )
    parser.add_argument("--store", required=True, help="the artifact store URI, e.g. s3://kubeloop")
    parser.add_argument("--wait", type=float, default=60.0, help="seconds to wait for the operator")
    args = parser.parse_args(argv)
    checks = {
        "operator": operator_health(args.operator_url, args.wait),
        "store": store_round_trip(args.store),
    }
    return run_checks(checks)


if __name__ == "__main__":
    raise SystemExit(main())
