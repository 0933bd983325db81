"""`kubeloop serve`: the predictors and the gateway on 127.0.0.1, following the rollout in the store."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cli.common import EXIT_FAILED, OVERRIDES_HELP, command, config_from_args


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the model locally: predictors and the gateway, following the rollout in the store."""
    import signal
    import socket
    import tempfile
    import threading
    from pathlib import Path

    from components.common.store import LocalStore, open_store
    from components.deploy.local_follow import follow, state_key
    from components.deploy.local_serving import LocalServing

    config = config_from_args(args)
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", args.port))
        except OSError as exc:
            print(
                f"error: the gateway cannot listen on 127.0.0.1:{args.port} ({exc}): pass --port",
                file=sys.stderr,
            )
            return EXIT_FAILED
    store = open_store(args.store or config.store)
    log_dir = store.root / "serving" if isinstance(store, LocalStore) else Path(tempfile.mkdtemp())
    try:
        serving = LocalServing(log_dir, port=args.port, drain_seconds=args.drain_seconds)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    mode = f"analysis every {config.deployment.analysis.interval_seconds:g}s" if args.auto else "manual steps"
    print(f"serving {config.name} from {store.uri} on 127.0.0.1:{args.port} ({mode})", flush=True)
    try:
        follow(store, config, serving, stop, args.poll, args.auto, say=lambda line: print(line, flush=True))
    finally:
        print("stopping: predictors flush their request logs", flush=True)
        serving.close()
        store.delete(state_key(config.name))
    return 0


def add_parsers(sub: Any) -> None:
    """The serve subcommand."""
    srv = command(
        sub,
        "serve",
        "serve locally: one microservice per predictor and the gateway, following the rollout",
        "kubeloop serve --config examples/screening/config.yaml --auto --port 8080",
    )
    srv.add_argument("--config", required=True, help="project YAML (deployment section)")
    srv.add_argument("--store", help="folder or s3://bucket/prefix (default: the config's store)")
    srv.add_argument("--port", type=int, default=8080, help="gateway port on 127.0.0.1 (default 8080)")
    srv.add_argument(
        "--auto",
        action="store_true",
        help="analyse the logs and step the rollout every deployment.analysis.interval_seconds",
    )
    srv.add_argument("--poll", type=float, default=1.0, help="seconds between checks of the deployment")
    srv.add_argument(
        "--drain-seconds", type=float, default=2.0, help="how long a replaced predictor keeps running"
    )
    srv.add_argument("overrides", nargs="*", metavar="key=value", help=OVERRIDES_HELP)
    srv.set_defaults(func=cmd_serve)
