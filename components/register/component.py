"""KFP component of the register step (logic in components.register.step)."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Output

from components.common.images import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def register(
    config_json: str,
    store_uri: str,
    run_id: str,
    splits: str,
    model: str,
    evaluation: str,
    calibration: str,
    card: Output[HTML],
    lineage: str = "",
) -> NamedTuple("RegisterOutputs", [("version", str)]):  # type: ignore[valid-type]  # noqa: F821,UP006
    """Write the model version (ONNX, checkpoint, calibration, metrics, lineage, card)."""
    from collections import namedtuple

    from components.common.step import step_context, write_kfp_text
    from components.register.step import run

    with step_context(config_json, store_uri, run_id, "register") as ctx:
        version, html = run(ctx, splits, model, evaluation, calibration, lineage)
        write_kfp_text(card, html)
    RegisterOutputs = namedtuple("RegisterOutputs", ["version"])
    return RegisterOutputs(version)
