"""Calibration maps from a model's logit to a probability, shared by calibrate, evaluate and serving.

A calibration record (`calibration.json`) names its method and parameters:

- `temperature`: p = sigmoid(logit / T). Folded into the registered ONNX graph as its
  `probability` output, so serving reads it from the model.
- `platt`: p = sigmoid(a * logit + b) (Platt 1999).
- `isotonic`: p = piecewise-linear interpolation of (x, y) knots on the logit, clipped at the
  ends (as scikit-learn's IsotonicRegression with out_of_bounds="clip").
- `none`: p = sigmoid(logit).

Only numpy is needed to apply a record: the serving image (Python 3.12) imports this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

METHODS = ("temperature", "platt", "isotonic", "none")
"""Every calibration map a record can hold."""

PROBABILITY_OUTPUT = "probability"
"""Name of the calibrated output that `fold_temperature` adds to the ONNX graph."""


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function."""
    return np.exp(-np.logaddexp(0.0, -z))


def apply(record: Mapping[str, Any], logits: np.ndarray) -> np.ndarray:
    """Calibrated probabilities of `logits` under a calibration record.

    Raises:
        ValueError: The record names an unknown method or lacks its parameters.
    """
    z = np.asarray(logits, dtype=np.float64).reshape(-1)
    method = record.get("method")
    params = record.get("params", {})
    try:
        if method == "temperature":
            return sigmoid(z / float(params["temperature"]))
        if method == "platt":
            return sigmoid(float(params["a"]) * z + float(params["b"]))
        if method == "isotonic":
            return np.interp(z, np.asarray(params["x"], float), np.asarray(params["y"], float))
        if method == "none":
            return sigmoid(z)
    except KeyError as exc:
        raise ValueError(f"calibration record for {method!r} lacks parameter {exc}") from exc
    raise ValueError(f"unknown calibration method {method!r}; expected one of {', '.join(METHODS)}")


def probabilities(record: Mapping[str, Any], outputs: Mapping[str, np.ndarray]) -> np.ndarray:
    """Calibrated probabilities from an ONNX run's named outputs, as serving computes them.

    A graph with the temperature folded in gives its `probability` output; otherwise the
    record's map is applied to the `logit` output.
    """
    if PROBABILITY_OUTPUT in outputs:
        return np.asarray(outputs[PROBABILITY_OUTPUT], dtype=np.float64).reshape(-1)
    return apply(record, outputs["logit"])


def fold_temperature(onnx_model: bytes, temperature: float) -> bytes:
    """The ONNX graph with a `probability` output = sigmoid(logit / T) beside `logit`.

    Serving then needs no calibration code for the temperature method; `logit` stays for
    monitoring and for recalibration on stored predictions.
    """
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load_from_string(onnx_model)
    graph = model.graph
    logit = next(o for o in graph.output if o.name == "logit")
    graph.initializer.append(
        helper.make_tensor("kubeloop_temperature", TensorProto.FLOAT, [], [float(temperature)])
    )
    graph.node.extend(
        [
            helper.make_node("Div", ["logit", "kubeloop_temperature"], ["kubeloop_scaled_logit"]),
            helper.make_node("Sigmoid", ["kubeloop_scaled_logit"], [PROBABILITY_OUTPUT]),
        ]
    )
    shape = [d.dim_param or d.dim_value for d in logit.type.tensor_type.shape.dim]
    graph.output.append(helper.make_tensor_value_info(PROBABILITY_OUTPUT, TensorProto.FLOAT, shape))
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def normalise(record: Mapping[str, Any], default_threshold: float) -> dict[str, Any]:
    """A record in the current layout, from one written by an older kubeloop.

    Versions registered before Platt/isotonic and the operating point kept the temperature
    at the top level and decided at `evaluation.threshold`.
    """
    out = dict(record)
    if "params" not in out and out.get("method") == "temperature" and "temperature" in out:
        out["params"] = {"temperature": out["temperature"]}
    out.setdefault("operating_point", {"threshold": default_threshold, "target": None})
    return out
