"""`kubeloop init`: profile a table or image manifest and write a starter config for it."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from cli.common import EXIT_FAILED, EXIT_USAGE, command


def cmd_init(args: argparse.Namespace) -> int:
    """Write the starter config; refuse to overwrite one unless --force."""
    from components.common.config_loader import ConfigError, load_config
    from components.common.data import DataReadError, local_path, read_table
    from components.validate_data.starter import InitError, starter_config

    out = Path(args.out)
    if out.exists() and not args.force:
        print(f"error: {out} exists; pass --force to overwrite it, or --out another file", file=sys.stderr)
        return EXIT_USAGE
    try:
        with local_path(args.data) as path:
            frame = read_table(path)
        text = starter_config(frame, args.data, args.label, out)
    except (InitError, DataReadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    out.parent.mkdir(parents=True, exist_ok=True)
    # Written beside its final name (dataset.path is relative to it) and loaded before it replaces
    # anything: a starter that does not load is a bug of init's, never left for a user to find.
    draft = out.with_name(f".{out.name}.init-{os.getpid()}")
    draft.write_text(text, encoding="utf-8")
    try:
        config = load_config(draft)
    except ConfigError as exc:
        draft.unlink()
        print(f"error: the starter config does not load, which is a kubeloop bug: {exc}", file=sys.stderr)
        return EXIT_FAILED
    draft.replace(out)
    dataset = config.dataset
    print(
        f"wrote {out}: {dataset.modality} data, {dataset.task} label '{dataset.label}', "
        f"split {dataset.split.strategy}, "
        f"{len(config.validation.columns)} column rules; read its comments, then:\n"
        f"  kubeloop run --config {out}"
    )
    return 0


def add_parsers(sub: Any) -> None:
    """The init subcommand."""
    init = command(
        sub,
        "init",
        "profile a table or image manifest and write a starter config for it, each value commented",
        "kubeloop init --data exams.csv --label y",
    )
    init.add_argument("--data", required=True, help="CSV or Parquet file: a path or s3://bucket/key")
    init.add_argument("--label", help="the label column (default: a column named label, target, y, ...)")
    init.add_argument("--out", default="config.yaml", help="the config to write (default: config.yaml)")
    init.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    init.set_defaults(func=cmd_init)
