"""The Seldon Core model class: a registered kubeloop version behind `seldon-core-microservice`.

    seldon-core-microservice components.deploy.seldon_model.KubeloopModel --service-type MODEL \\
        --parameters '[{"name": "model_dir", "value": "/mnt/models", "type": "STRING"}]'

It loads what the registry holds for one version (model.onnx, preprocessing.json,
calibration.json, schema.json) and answers each row with its calibrated probability and the
decision at the version's operating threshold: exactly what evaluate measured. Runs in the
serving environment (Python 3.12, seldon-core 1.19): numpy, pandas and onnxruntime; Pillow and pydicom
for image versions.
"""

from __future__ import annotations

import base64
import binascii
import gc
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from components.common import calibration
from components.common.artifacts import SCHEMA_FILE, DatasetSchema
from components.common.modalities import INPUTS_FILE, MAX_ROWS, BadInput, ServedBatch
from components.common.onnx_outputs import EMBEDDING, encode_embeddings, score_outputs
from components.deploy.model_metrics import PORT as METRICS_PORT
from components.deploy.model_metrics import Counts, serve_metrics
from components.deploy.request_log import ENCODER, RequestLog, now_iso

MAX_REQUEST_BYTES = 64 * 2**20
"""Largest request body by default (deployment.serving.max_request_bytes): a batch of large
images fits; a larger body is refused with a 413 before it is read into memory."""

WARMUP_BATCHES = (1, 2, 4, 8, 16)
"""Batch sizes a fresh server scores before its first client (`_warm_up`)."""

DRAIN_BYTES = 1 << 30
"""A refused body up to this size is read and dropped, so that the client gets the 413."""

OUTPUTS = ["probability", "decision"]
"""The columns of every response row of a binary version (a multi-class one answers
probability_<class> per class, then decision)."""


VERSION_FILES = ("model.onnx", INPUTS_FILE, "calibration.json", SCHEMA_FILE, "lineage.json")
"""What serving needs of a registered version."""


def fetch_version(model_uri: str) -> Path:
    """Copy a version's serving files from the store into a new private folder."""
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
        metrics_port: int = METRICS_PORT,
        metrics_host: str = "0.0.0.0",
        metrics_dir: str = "",
        max_request_bytes: int = MAX_REQUEST_BYTES,
        sample_share: float = 0.0,
        retention_days: int = 0,
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
            metrics_seconds: Each worker writes its metric totals at most this often.
            metrics_port: Port of kubeloop's /metrics (Seldon's `custom_service` process serves
                it); 0: none. Seldon's own metrics port carries none of kubeloop's series:
                its per-request copying of them cost more than scoring (model_metrics.py).
            metrics_host: Address that /metrics listens on.
            metrics_dir: Folder the workers share their totals through; default: a new one.
            max_request_bytes: Largest request body; a larger one is a 413 before it is read.
            sample_share: Share of served files (images) kept in the store for retraining, at
                `served/<model>/<day>/<sha256>.<ext>`, chosen by content hash (an image is kept
                every time or never); needs `log_uri`. 1: every file.
            retention_days: Delete kept files of days older than this; 0: keep them.
        """
        import onnxruntime as ort

        folder = fetch_version(model_uri) if model_uri else Path(model_dir)
        self.version = model_version or folder.name
        self.max_rows = int(max_rows)
        schema = DatasetSchema.from_json((folder / SCHEMA_FILE).read_text())
        self.name = str(json.loads((folder / "lineage.json").read_text())["config"]["name"])
        modality = schema.make_modality()
        inputs = modality.load_inputs(json.loads((folder / INPUTS_FILE).read_text()))
        self.codec = modality.codec(inputs, schema)
        record = json.loads((folder / "calibration.json").read_text())
        self.calibration = calibration.normalise(record, 0.5)
        self.head = schema.make_task().serving_head(self.calibration)
        options = ort.SessionOptions()
        # One thread per gunicorn worker: the workers are the parallelism, and idle intra-op
        # threads would spin on the cores the other workers need.
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(
            str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        # The score outputs only: an `embedding` output is for the monitor, not the answer.
        self.output_names = score_outputs(o.name for o in self.session.get_outputs())
        graph_outputs = {o.name for o in self.session.get_outputs()}
        self.embedding_output = EMBEDDING if EMBEDDING in graph_outputs else None
        self.max_request_bytes = int(max_request_bytes)
        self.sample_share, self.retention_days = float(sample_share), int(retention_days)
        self.metrics_seconds = float(metrics_seconds)
        self.metrics_port, self.metrics_host = int(metrics_port), metrics_host
        self.metrics_dir = Path(metrics_dir or tempfile.mkdtemp(prefix="kubeloop-metrics-"))
        self.metrics_dir.mkdir(parents=True, exist_ok=True)
        self.counts: Counts | None = None
        self.predictor = predictor or os.environ.get("PREDICTOR_ID", "default")
        self.log_uri = log_uri
        self.flush_rows, self.flush_seconds = int(flush_rows), float(flush_seconds)
        self.request_log: RequestLog | None = None
        fields = {"predictor": self.predictor, "model": self.name, "model_version": self.version}
        self._log_fields = ENCODER.encode(fields)[1:-1]  # the same in every row of this server
        self._request_path: dict[str, str] = {}

    def load(self) -> None:
        """Per serving process (Seldon calls it in each gunicorn worker): start the request log
        and the metric counts.

        Both start here, not in __init__: the workers are forked after __init__, a thread does
        not survive a fork, and each worker's counts live in a file of its own pid.
        """
        from seldon_core.utils import get_request_path

        from components.deploy.seldon_metrics import skip_empty_updates

        self._request_path = get_request_path()  # {model name: image}, from Seldon's environment
        skip_empty_updates()  # Seldon's metrics round trips, six per request, record nothing for us
        self._warm_up()  # before the request log starts: warm-up rows are not traffic
        if self.counts is None:
            labels = {
                "kubeloop_model": self.name,
                "kubeloop_version": self.version,
                "predictor": self.predictor,
            }
            self.counts = Counts(self.metrics_dir, labels, self.metrics_seconds)
            self.counts.start()
        if self.log_uri and self.request_log is None:
            from components.common.store import open_store

            store = open_store(self.log_uri)
            self.request_log = RequestLog(
                store,
                self.name,
                self.predictor,
                self.flush_rows,
                self.flush_seconds,
                retention_days=self.retention_days or None,
            )
            self.request_log.flush_on_sigterm()
        # Everything loaded so far lives as long as the worker: frozen, the collector's full
        # passes skip it. Measured here: a full collection in a worker went from 56-72 ms
        # (90k objects: Flask, numpy, onnxruntime, Seldon) to 1.5 ms, a pause every few
        # thousand requests that landed in the tail latency.
        gc.freeze()

    def _warm_up(self) -> None:
        """Score example requests of a few batch sizes through decode, the model and the log
        lines before the first client: onnxruntime sizes its buffers per batch shape, and the
        first decode loads its plugins. Measured in the image loop: a fresh canary's first 14
        requests took 8-44 ms against a 3.4 ms median, enough to fail its tail-latency check."""
        for rows in WARMUP_BATCHES:
            if rows > self.max_rows:
                break
            for _ in range(2):
                try:
                    batch = self.codec.decode(self.codec.example_payload(rows), None, self.max_rows)
                except BadInput:  # bounds that refuse the example's format: the model alone
                    batch = self.codec.example()
                probability, decision, embedding = self.score_with_embedding(batch, True)
                self._lines("warm-up", batch, probability, decision, 0.0, embedding)

    def score(self, frame: ServedBatch) -> tuple[list[Any], list[int]]:
        """(answer, decision) per checked row: the calibrated probability (binary) or the
        probabilities per class, and the decision (`ServingHead.answer`).

        Plain lists after calibration: the response and the log lines want Python values, and
        each numpy call on a single row costs microseconds that the request pays. A NaN is
        never served: the head raises, the caller gets a 500 and the logs count it.
        """
        answers, decisions, _ = self.score_with_embedding(frame, embedding=False)
        return answers, decisions

    def score_with_embedding(
        self, frame: ServedBatch, embedding: bool
    ) -> tuple[list[Any], list[int], np.ndarray | None]:
        """`score`, and the graph's embedding output (rows, D) when asked and the graph has one."""
        names = self.output_names
        if embedding and self.embedding_output:
            names = [*names, self.embedding_output]
        values = self.session.run(names, self.codec.feed(frame))
        outputs = dict(zip(self.output_names, values, strict=False))
        answers, decisions = self.head.answer(outputs)
        return answers, decisions, values[-1] if len(values) > len(self.output_names) else None

    def predict_raw(self, request: Any) -> dict[str, Any]:
        """Seldon's entry point for REST: the request's JSON in, the response's JSON out.

        Decoding the payload here rather than in Seldon keeps each value as JSON sent it (Seldon
        turns a row holding any text into an array of strings) and builds the response without
        Seldon's numpy round trip. A gRPC message goes the usual way (Seldon decodes it, then
        calls `predict`).
        """
        from seldon_core.flask_utils import SeldonMicroserviceException
        from seldon_core.user_model import SeldonNotImplementedError

        if not isinstance(request, dict):
            raise SeldonNotImplementedError("not JSON: Seldon decodes it and calls predict")
        meta = request.get("meta") or {}
        names: list[str] | None = None
        data, tensor = request.get("data"), False
        X: Any
        if isinstance(data, dict) and ("ndarray" in data or "tensor" in data):
            names = data.get("names") or None
            tensor = "tensor" in data
            X = _tensor_rows(data["tensor"]) if tensor else data["ndarray"]
        elif "jsonData" in request:
            X = request["jsonData"]
        elif "strData" in request:
            X = request["strData"]
        elif "binData" in request:
            X = _bin_data(request["binData"])
        else:
            raise SeldonMicroserviceException(
                'send rows as {"data": {"names": [...], "ndarray": [[...], ...]}}, named features as '
                '{"jsonData": {"instances": [{feature: value, ...}, ...]}}, or a file as binData or '
                f"strData; got {sorted(request) if request else 'an empty object'}",
                status_code=400,
                reason="BAD_REQUEST",
            )
        request_id, probability, decision, embeddings = self.serve(X, names, meta.get("puid"))
        response: dict[str, Any]
        head = self.head
        if isinstance(X, dict | str | bytes):
            response = {"jsonData": self._named(probability, decision, embeddings)}
        elif tensor:
            values = np.array([head.row(a, d) for a, d in zip(probability, decision, strict=True)])
            response = {
                "data": {
                    "names": head.names,
                    "tensor": {"shape": list(values.shape), "values": values.ravel().tolist()},
                }
            }
        else:
            rows = [head.row(a, d) for a, d in zip(probability, decision, strict=True)]
            response = {"data": {"names": head.names, "ndarray": rows}}
        # Seldon's meta, as its own response builder makes it: the caller's tags and path kept.
        out: dict[str, Any] = {"tags": {**(meta.get("tags") or {}), **self.response_tags(request_id)}}
        if meta.get("puid"):
            out["puid"] = meta["puid"]
        path = {**self._request_path, **(meta.get("requestPath") or {})}
        if path:
            out["requestPath"] = path
        response["meta"] = out
        return response

    def predict(
        self, X: Any, features_names: list[str] | None = None, meta: dict[str, Any] | None = None
    ) -> Any:
        """Seldon's entry point for gRPC: rows in, [[probability, decision], ...] out; bad input is a 400.

        A jsonData request gets jsonData back: {"predictions": [{"probability", "decision"}, ...]}.
        Tags ride on the response (SeldonResponse) rather than a `tags()` method; metrics go to
        kubeloop's own endpoint (see `custom_service`).
        """
        from seldon_core.user_model import SeldonResponse

        puid = (meta or {}).get("puid")
        request_id, probability, decision, embeddings = self.serve(X, features_names, puid)
        data: Any
        if isinstance(X, dict | str | bytes):  # named features or a file in, named outputs out
            data = self._named(probability, decision, embeddings)
        else:
            data = np.array([self.head.row(a, d) for a, d in zip(probability, decision, strict=True)])
        return SeldonResponse(data, tags=self.response_tags(request_id))

    def serve(
        self, X: Any, names: list[str] | None, puid: Any
    ) -> tuple[str, list[Any], list[int], list[list[float]] | None]:
        """Check, score, count and log one request: (request id, answers, decisions, and the
        embeddings where the request asked for them).

        Bad input raises Seldon's 400, logged with its reason; a scoring failure is logged as a
        500 and raised.
        """
        from seldon_core.flask_utils import SeldonMicroserviceException

        started = time.perf_counter()
        request_id = str(puid or os.urandom(16).hex())  # uuid4().hex's form, 5x cheaper
        try:
            frame = self.codec.decode(X, names, self.max_rows)
        except BadInput as exc:
            self._log_failure(request_id, started, 400, str(exc))
            raise SeldonMicroserviceException(str(exc), status_code=400, reason="BAD_REQUEST") from exc
        asked = self.codec.wants_embedding(frame)
        logged = self.codec.logs_embedding and self.request_log is not None
        try:
            probability, decision, embedding = self.score_with_embedding(frame, asked or logged)
        except Exception as exc:
            # A server-side failure: logged so the rollout analysis counts it, then Seldon's 500.
            self._log_failure(request_id, started, 500, f"{type(exc).__name__}: {exc}")
            raise
        milliseconds = 1000 * (time.perf_counter() - started)
        if self.counts is not None:
            self.counts.observe(200, milliseconds / 1000, len(decision), self.head.flagged(decision))
        if self.request_log is not None:
            extra = embedding if logged else None
            stored = self._keep_files(frame) if self.sample_share > 0 else None
            self.request_log.log_lines(
                *self._lines(request_id, frame, probability, decision, milliseconds, extra, stored)
            )
        answered = None
        if asked and embedding is not None:
            answered = np.round(embedding.astype(np.float64), 6).tolist()
        return request_id, probability, decision, answered

    def _keep_files(self, frame: ServedBatch) -> list[str | None]:
        """Queue the sampled files of a request for the store; per row, the key it is kept
        under (None when not kept)."""
        assert self.request_log is not None
        day = now_iso()[:10].replace("-", "")
        keys: list[str | None] = []
        for file in self.codec.files(frame):
            if file is None or int(file.sha256[:12], 16) >= self.sample_share * 16**12:
                keys.append(None)
                continue
            key = f"served/{self.name}/{day}/{file.sha256}.{file.extension}"
            self.request_log.log_file(key, file.data)
            keys.append(key)
        return keys

    def _log_failure(self, request_id: str, started: float, status: int, error: str) -> None:
        if self.counts is not None:
            self.counts.observe(status, time.perf_counter() - started)
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

    def _lines(
        self,
        request_id: str,
        frame: ServedBatch,
        probability: list[float],
        decision: list[int],
        milliseconds: float,
        embeddings: np.ndarray | None = None,
        stored: list[str | None] | None = None,
    ) -> tuple[str, list[str]]:
        """(time, one JSON log line per served row), built from pre-encoded parts: json.dumps of
        a record dict cost more than scoring the row. Checked values are finite floats or text;
        `embeddings` (rows, D) go in as "embedding" (`onnx_outputs.encode_embeddings`), the keys
        of kept files as "stored"."""
        time_iso = now_iso()
        shared = (
            f'{{"request_id":{ENCODER.encode(request_id)},"time":"{time_iso}",{self._log_fields},'
            f'"status":200,"latency_ms":{round(milliseconds, 3)!r},"row":'
        )
        answer = self.head.log_fields
        members = self.codec.log_members(frame)
        if embeddings is not None:
            encoded = encode_embeddings(embeddings)
            members = [f'{m},"embedding":"{e}"' for m, e in zip(members, encoded, strict=True)]
        if stored is not None:
            pairs = zip(members, stored, strict=True)
            members = [m if k is None else f'{m},"stored":"{k}"' for m, k in pairs]
        rows = zip(members, probability, decision, strict=True)
        lines = [f"{shared}{index},{answer(p, d)},{inputs}}}\n" for index, (inputs, p, d) in enumerate(rows)]
        return time_iso, lines

    def class_names(self) -> list[str]:
        """Column names of the ndarray response."""
        return self.head.names

    def _named(
        self, answers: list[Any], decisions: list[int], embeddings: list[list[float]] | None = None
    ) -> dict[str, Any]:
        """The jsonData answer: one prediction object per row (with its embedding when asked)."""
        predictions = [self.head.named(a, d) for a, d in zip(answers, decisions, strict=True)]
        if embeddings is not None:
            for prediction, embedding in zip(predictions, embeddings, strict=True):
                prediction["embedding"] = embedding
        return {"predictions": predictions}

    @property
    def model_error_handler(self) -> Any:
        """A Flask blueprint Seldon registers on its REST app (it looks for this attribute):
        a body over `max_request_bytes` is refused with a 413 before it is read, whether it
        says its length or streams in chunks, and logged like any refused request."""
        from flask import Blueprint, jsonify, request
        from seldon_core.flask_utils import SeldonMicroserviceException
        from werkzeug.exceptions import RequestEntityTooLarge

        limit = self.max_request_bytes
        blueprint = Blueprint("kubeloop_request_limits", __name__)

        @blueprint.record_once
        def _cap(state: Any) -> None:
            state.app.config["MAX_CONTENT_LENGTH"] = limit

        def too_large(sent: str) -> Any:
            message = (
                f"the request body is {sent}, more than the {limit:,} bytes this model accepts "
                "(deployment.serving.max_request_bytes): send fewer or smaller images per request"
            )
            self._log_failure(os.urandom(16).hex(), time.perf_counter(), 413, message)
            error = SeldonMicroserviceException(message, status_code=413, reason="PAYLOAD_TOO_LARGE")
            response = jsonify(error.to_dict())
            response.status_code = 413
            return response

        @blueprint.before_app_request
        def _refuse_declared() -> Any:
            length = request.content_length
            if length is None or length <= limit:
                return None
            # Read past the body in small pieces (memory stays flat), so the client, still
            # sending, reads the 413 instead of a reset connection; a body beyond DRAIN_BYTES
            # is cut off instead.
            stream, left = request.environ["wsgi.input"], min(length, DRAIN_BYTES)
            while left > 0 and (piece := stream.read(min(1 << 16, left))):
                left -= len(piece)
            return too_large(f"{length:,} bytes")

        @blueprint.app_errorhandler(RequestEntityTooLarge)
        def _refuse_streamed(_: Exception) -> Any:
            return too_large("larger")

        return blueprint

    def response_tags(self, request_id: str) -> dict[str, Any]:
        """Sent back in every response's meta: which version answered, at which threshold, and
        the request id the logs carry (the caller's meta.puid when it sent one)."""
        return {
            "model_name": self.name,
            "model_version": self.version,
            **self.head.tags(),
            "request_id": request_id,
        }

    def custom_service(self) -> None:
        """Seldon runs this in a process of its own: kubeloop's /metrics (see model_metrics.py)."""
        if self.metrics_port:
            serve_metrics(self.metrics_dir, self.metrics_host, self.metrics_port)

    def health_status(self) -> dict[str, Any]:
        """Readiness: the model is loaded and scores a row of its own (the feature means)."""
        self.score(self.codec.example())  # raises on a non-finite probability
        return {"model_version": self.version, "rows_served": self.counts.rows if self.counts else 0}

    def init_metadata(self) -> dict[str, Any]:
        """Seldon's /metadata: inputs by name, the two outputs, the version."""
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": "kubeloop-onnx",
            "inputs": self.codec.metadata(),
            "outputs": [{"messagetype": "ndarray", "schema": {"names": self.head.names}}],
            "custom": {
                **{k: str(v) for k, v in self.head.tags().items()},
                "calibration": str(self.calibration["method"]),
            },
        }


def _bin_data(value: Any) -> bytes:
    """A REST binData value (base64 text) as bytes; gRPC hands bytes already."""
    from seldon_core.flask_utils import SeldonMicroserviceException

    if isinstance(value, bytes):
        return value
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SeldonMicroserviceException(
            "binData must be the file's bytes, base64-encoded", status_code=400, reason="BAD_REQUEST"
        ) from exc


def _tensor_rows(tensor: Any) -> Any:
    """data.tensor ({"shape": [rows, features], "values": [...]}) as nested rows."""
    from seldon_core.flask_utils import SeldonMicroserviceException

    try:
        return np.asarray(tensor["values"], dtype=np.float64).reshape(tensor["shape"]).tolist()
    except (KeyError, TypeError, ValueError) as exc:
        raise SeldonMicroserviceException(
            f'data.tensor needs "shape" and as many numeric "values" ({exc})',
            status_code=400,
            reason="BAD_REQUEST",
        ) from exc
