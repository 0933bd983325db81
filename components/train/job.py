"""Entry point of every PyTorchJob pod: the same worker, with its files in the artifact store.

Each pod runs `torchrun ... -m components.train.job STORE_URI SPEC_KEY`; the Training
Operator sets torchrun's rendezvous through PET_* variables. Pods on different nodes share
nothing but the store, so inputs come from it, rank 0 copies each epoch's checkpoint to it
(a restarted pod, on any node, resumes from there) and rank 0 uploads the result that the
train step then exports and checks.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from components.common.store import open_store
from components.train.worker import run_worker


def main(store_uri: str, spec_key: str) -> None:
    """Download the splits and any checkpoint, train, upload the result (rank 0)."""
    store = open_store(store_uri)
    spec = store.read_json(spec_key)
    with tempfile.TemporaryDirectory(prefix="kubeloop-job-") as tmp:
        local = Path(tmp)
        paths = {
            name: str(store.download_file(spec[f"{name}_key"], local / f"{name}.parquet"))
            for name in ("train", "validation")
        }
        checkpoint, out = local / "checkpoint.pt", local / "result.pt"
        if store.exists(spec["checkpoint_key"]):
            store.download_file(spec["checkpoint_key"], checkpoint)
        if spec.get("init_key"):  # training.init_from, resolved by the train step
            paths["init_state"] = str(store.download_file(spec["init_key"], local / "init.pt"))
        run_worker(
            {**spec, **paths, "checkpoint": str(checkpoint), "out": str(out)},
            on_checkpoint=lambda path: store.upload_file(spec["checkpoint_key"], path),
        )
        if os.environ.get("RANK", "0") == "0":
            store.upload_file(spec["result_key"], out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
