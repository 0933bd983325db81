"""The Seldon Core model class: a registered kubeloop version behind `seldon-core-microservice`.

    seldon-core-microservice components.deploy.seldon_model.KubeloopModel --service-type MODEL \\
        --parameters '[{"name": "model_dir", "value": "/mnt/models", "type": "STRING"}]'

It loads what the registry holds for one version (model.onnx, preprocessing.json,
calibration.json, schema.json) and answers each row with its calibrated probability and the
decision at the version's operating threshold: exactly what evaluate measured. Runs in the
serving environment (Python 3.12, seldon-core 1.19): only numpy, pandas and onnxruntime here.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from components.common import calibration
from components.common.preprocessing import Preprocessing
from components.deploy.request_log import RequestLog, now_iso
from components.deploy.requests import MAX_ROWS, BadRequest, FeatureSchema, Rows, parse

OUTPUTS = ["probability", "decision"]
"""The columns of every response row."""


LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, math.inf)
"""Upper bounds (seconds) of the model-time histogram."""

VERSION_FILES = ("model.onnx", "preprocessing.json", "calibration.json", "schema.json", "lineage.json")
"""What serving needs of a registered version."""


def fetch_version(model_uri: str) -> Path:
    """Copy a version's serving files from the store into a new private folder."""
    import tempfile

    from components.common.store import open_store

    store = open_store(model_uri)
    folder = Path(tempfile.mkdtemp(prefix="kubeloop-model-")) / model_uri.rstrip("/").rsplit("/", 1)[-1]
    folder.mkdir()
    for name in VERSION_FILES:
        (folder / name).write_bytes(store.read_bytes(name))
    return folder


class KubeloopModel:
    """One registered model version, scored as the evaluate step scored it."""

    def __init__(
        self,
        model_dir: str = "/mnt/models",
        model_version: str = "",
        max_rows: int = MAX_ROWS,
        log_uri: str = "",
        predictor: str = "",
        flush_rows: int = 1000,
        flush_seconds: float = 5.0,
        model_uri: str = "",
        metrics_seconds: float = 1.0,
    ) -> None:
        """Load the version's files.

        Args:
            model_dir: A registry version folder (Seldon's storage initializer puts the
                SeldonDeployment's modelUri at /mnt/models).
            model_version: Version reported in tags and metrics; default: the folder's name.
            max_rows: Largest batch one request may carry.
            log_uri: Store (folder or s3://bucket/prefix) for request logs; empty: no logging.
            predictor: Predictor name in the logs; default: Seldon's PREDICTOR_ID or "default".
            flush_rows: Log rows written as soon as this many wait.
            flush_seconds: Log rows written at least this often.
            model_uri: A version's prefix in the store (s3://bucket/models/<name>/<version>);
                when set, its files are fetched into a private folder and model_dir is ignored.
            metrics_seconds: Custom metrics go to Seldon at most this often (0: every request).
                Seldon's update goes through a multiprocessing manager and cost 2 ms a
                request here, more than scoring; batched, every observation still counts.
        """
        import onnxruntime as ort

        folder = fetch_version(model_uri) if model_uri else Path(model_dir)
        self.version = model_version or folder.name
        self.max_rows = int(max_rows)
        schema = json.loads((folder / "schema.json").read_text())
        self.name = str(json.loads((folder / "lineage.json").read_text())["config"]["name"])
        self.schema = FeatureSchema.from_schema(schema)
        self.prep = Preprocessing.from_dict(json.loads((folder / "preprocessing.json").read_text()))
        record = json.loads((folder / "calibration.json").read_text())
        self.calibration = calibration.normalise(record, 0.5)
        self.threshold = float(self.calibration["operating_point"]["threshold"])
        options = ort.SessionOptions()
        # One thread per gunicorn worker: the workers are the parallelism, and idle intra-op
        # threads would spin on the cores the other workers need.
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(
            str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        self.output_names = [o.name for o in self.session.get_outputs()]
        self._lock = threading.Lock()
        self._rows = 0
        self.metrics_seconds = float(metrics_seconds)
        self._observed: list[tuple[int, int, float]] = []  # (rows, positives, ms) not yet reported
        self._metrics_due = 0.0
        self.predictor = predictor or os.environ.get("PREDICTOR_ID", "default")
        self.log_uri = log_uri
        self.flush_rows, self.flush_seconds = int(flush_rows), float(flush_seconds)
        self.request_log: RequestLog | None = None

    def load(self) -> None:
        """Per serving process (Seldon calls it in each gunicorn worker): start the request log.

        The writer thread must start here, not in __init__: the workers are forked after
        __init__, and a thread does not survive a fork.
        """
        if self.log_uri and self.request_log is None:
            from components.common.store import open_store

            store = open_store(self.log_uri)
            self.request_log = RequestLog(
                store, self.name, self.predictor, self.flush_rows, self.flush_seconds
            )
            self.request_log.flush_on_sigterm()

    def score(self, frame: Rows) -> tuple[np.ndarray, np.ndarray]:
        """(calibrated probability, 0/1 decision) per checked row."""
        outputs = dict(
            zip(self.output_names, self.session.run(None, {"features": self.prep.encode(frame)}), strict=True)
        )
        probability = calibration.probabilities(self.calibration, outputs)
        bad = np.flatnonzero(~np.isfinite(probability))
        if bad.size:  # never serve a NaN as a score: the caller gets a 500 and the logs count it
            raise ValueError(f"the model returned a non-finite probability for row(s) {bad[:10].tolist()}")
        return probability, (probability >= self.threshold).astype(np.int64)

    def predict(
        self, X: Any, features_names: list[str] | None = None, meta: dict[str, Any] | None = None
    ) -> Any:
        """Seldon's entry point: rows in, [[probability, decision], ...] out; bad input is a 400.

        A jsonData request gets jsonData back: {"predictions": [{"probability", "decision"}, ...]}.
        Tags and metrics ride on the response (SeldonResponse) rather than `tags()`/`metrics()`
        methods: with a metrics() method Seldon updates its multiprocess metrics state twice a
        request, 6 round trips to its manager process each (0.75 ms here).
        """
        from seldon_core.flask_utils import SeldonMicroserviceException
        from seldon_core.user_model import SeldonResponse

        started = time.perf_counter()
        request_id = str((meta or {}).get("puid") or os.urandom(16).hex())  # uuid4().hex's form, 5x cheaper
        try:
            frame = parse(X, features_names, self.schema, self.max_rows)
        except BadRequest as exc:
            self._log_failure(request_id, started, 400, str(exc))
            raise SeldonMicroserviceException(str(exc), status_code=400, reason="BAD_REQUEST") from exc
        try:
            probability, decision = self.score(frame)
        except Exception as exc:
            # A server-side failure: logged so the rollout analysis counts it, then Seldon's 500.
            self._log_failure(request_id, started, 500, f"{type(exc).__name__}: {exc}")
            raise
        milliseconds = 1000 * (time.perf_counter() - started)
        with self._lock:
            self._rows += len(decision)
            self._observed.append((len(decision), int(decision.sum()), milliseconds))
        if self.request_log is not None:
            self.request_log.log(self._records(request_id, frame, probability, decision, milliseconds))
        data: Any
        if isinstance(X, dict):  # named features in, named outputs out (Seldon's jsonData)
            data = {
                "predictions": [
                    {"probability": float(p), "decision": int(d)}
                    for p, d in zip(probability, decision, strict=True)
                ]
            }
        else:
            data = np.column_stack([probability, decision.astype(np.float64)])
        return SeldonResponse(data, tags=self.response_tags(request_id), metrics=self.take_metrics())

    def _log_failure(self, request_id: str, started: float, status: int, error: str) -> None:
        if self.request_log is not None:
            self.request_log.log(
                [
                    {
                        "request_id": request_id,
                        "row": 0,
                        "time": now_iso(),
                        "predictor": self.predictor,
                        "model": self.name,
                        "model_version": self.version,
                        "status": status,
                        "error": error[:500],
                        "latency_ms": round(1000 * (time.perf_counter() - started), 3),
                    }
                ]
            )

    def _records(
        self,
        request_id: str,
        frame: Rows,
        probability: np.ndarray,
        decision: np.ndarray,
        milliseconds: float,
    ) -> list[dict[str, Any]]:
        """One log record per served row."""
        time_iso, latency = now_iso(), round(milliseconds, 3)
        return [
            {
                "request_id": request_id,
                "row": index,
                "time": time_iso,
                "predictor": self.predictor,
                "model": self.name,
                "model_version": self.version,
                "features": features,
                "probability": float(p),
                "decision": int(d),
                "status": 200,
                "latency_ms": latency,
            }
            for index, (features, p, d) in enumerate(zip(frame.records(), probability, decision, strict=True))
        ]

    def class_names(self) -> list[str]:
        """Column names of the ndarray response."""
        return list(OUTPUTS)

    def response_tags(self, request_id: str) -> dict[str, Any]:
        """Sent back in every response's meta: which version answered, at which threshold, and
        the request id the logs carry (the caller's meta.puid when it sent one)."""
        return {
            "model_name": self.name,
            "model_version": self.version,
            "threshold": self.threshold,
            "request_id": request_id,
        }

    def take_metrics(self) -> list[dict[str, Any]]:
        """Per-version counters and a latency histogram for Seldon's Prometheus endpoint.

        Handed over with a response at most every `metrics_seconds`, all observations since
        the last batch at once (an idle worker reports its last batch with its next request). The
        histogram is cumulative `le` counters (`kubeloop_predict_seconds_bucket_total`, ready
        for histogram_quantile): a Seldon TIMER keeps numpy buckets in the state that Seldon
        copies through its multiprocessing manager on every request, which cost over 1 ms each.
        """
        now = time.monotonic()
        with self._lock:
            if not self._observed or now < self._metrics_due:
                return []
            observed, self._observed = self._observed, []
            self._metrics_due = now + self.metrics_seconds
        # Seldon's own labels include model_version (the image tag); the registry version needs its own.
        tags = {"kubeloop_model": self.name, "kubeloop_version": self.version}
        seconds = [o[2] / 1000 for o in observed]

        def counter(key: str, value: float, **labels: str) -> dict[str, Any]:
            return {"type": "COUNTER", "key": key, "value": value, "tags": {**tags, **labels}}

        return [
            counter("kubeloop_predictions_total", sum(o[0] for o in observed)),
            counter("kubeloop_positive_decisions_total", sum(o[1] for o in observed)),
            *(
                counter("kubeloop_predict_seconds_bucket", sum(1 for x in seconds if x <= le), le=f"{le:g}")
                for le in LATENCY_BUCKETS
            ),
            counter("kubeloop_predict_seconds_sum", sum(seconds)),
            counter("kubeloop_predict_seconds_count", len(seconds)),
        ]

    def health_status(self) -> dict[str, Any]:
        """Readiness: the model is loaded and scores a row of its own (the feature means)."""
        row: dict[str, Any] = dict(zip(self.prep.numeric, self.prep.mean, strict=True))
        row |= {c: values[0] for c, values in self.prep.categorical.items() if values}
        frame = parse([row], None, self.schema, 1)
        self.score(frame)  # raises on a non-finite probability
        return {"model_version": self.version, "rows_served": self._rows}

    def init_metadata(self) -> dict[str, Any]:
        """Seldon's /metadata: inputs by name, the two outputs, the version."""
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": "kubeloop-onnx",
            "inputs": [{"messagetype": "ndarray", "schema": {"names": self.schema.features}}],
            "outputs": [{"messagetype": "ndarray", "schema": {"names": OUTPUTS}}],
            "custom": {"threshold": str(self.threshold), "calibration": str(self.calibration["method"])},
        }
