"""Warm starts and fine-tuning: weights from an earlier model, a class added, frozen layers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from components.common.config import TrainingConfig
from components.common.model_spec import ModelSpec
from components.common.preprocessing import Preprocessing
from components.common.tasks import BinaryTask, MulticlassTask
from components.train.model import tabular_mlp
from components.train.warm_start import load_initial_weights, set_frozen, state_dict_of
from examples.screening.generate import generate
from tests.specs import fit, tabular_spec

FEATURES = ["age", "breast_density", "lesion_size_mm", "margin_irregularity", "intensity_mean", "scanner"]
TASK = BinaryTask("label", 1)


def _spec(outputs: int) -> ModelSpec:
    frame = generate(rows=200, prevalence=0.1, scanners={"A": 0.5, "B": 0.5}, seed=1)
    prep = Preprocessing.fit(frame, FEATURES, ["scanner"])
    task = MulticlassTask("label", None, [str(i) for i in range(outputs)]) if outputs > 1 else TASK
    return tabular_spec(prep, task)


def test_a_class_added_keeps_every_matching_tensor_and_reinitialises_the_head() -> None:
    torch.manual_seed(0)
    old = tabular_mlp(_spec(2), [16, 8], 0.0)
    new = tabular_mlp(_spec(3), [16, 8], 0.0)
    before = {k: v.clone() for k, v in new.state_dict().items()}
    loaded, fresh = load_initial_weights(new, {"state_dict": old.state_dict()})  # a kubeloop model.pt
    assert fresh == ["net.6.weight", "net.6.bias"] and "net.0.weight" in loaded  # the 3-logit head
    assert torch.equal(new.state_dict()["net.0.weight"], old.state_dict()["net.0.weight"])
    assert torch.equal(new.state_dict()["net.6.weight"], before["net.6.weight"])
    assert state_dict_of({"model": old.state_dict(), "epoch": 3}).keys() == old.state_dict().keys()
    with pytest.raises(ValueError, match="holds no weights"):
        state_dict_of({"epoch": 3})


def test_a_freeze_prefix_that_matches_nothing_is_refused_with_the_parameter_names() -> None:
    model = tabular_mlp(_spec(1), [8], 0.0)
    assert set_frozen(model, ["net.0"], True) == ["net.0.weight", "net.0.bias"]
    assert not model.net[0].weight.requires_grad and model.net[3].weight.requires_grad
    with pytest.raises(ValueError, match=r"training.freeze \['encoder'\] match no parameter.*net.0.weight"):
        set_frozen(model, ["encoder"], True)


def _data(scanners: dict[str, float], seed: int, rows: int = 3000) -> tuple[Preprocessing, list[np.ndarray]]:
    frame = generate(rows=rows, prevalence=0.15, scanners=scanners, seed=seed)
    cut = int(rows * 0.75)
    prep = Preprocessing.fit(frame.iloc[:cut], FEATURES, ["scanner"])
    x, y = prep.encode(frame), frame["label"].to_numpy(dtype=np.float32)
    return prep, [x[:cut], y[:cut], x[cut:], y[cut:]]


def test_frozen_layers_stay_as_loaded_until_they_are_unfrozen(tmp_path: Path) -> None:
    prep, split = _data({"A": 1.0}, seed=2, rows=1200)
    cfg = TrainingConfig(hidden_sizes=[16], epochs=1, dropout=0.0, device="cpu", smoke_test=False)
    v1, _ = fit(cfg, *split, tabular_spec(prep), task=TASK, log=lambda _: None)
    init = tmp_path / "v1.pt"
    torch.save({"state_dict": v1.state_dict()}, init)
    lines: list[str] = []
    frozen_cfg = cfg.model_copy(update={"freeze": ["net.0"], "epochs": 2, "unfreeze_after_epochs": 1})
    one, _ = fit(
        frozen_cfg.model_copy(update={"epochs": 1}),
        *split,
        tabular_spec(prep),
        task=TASK,
        init_state=init,
        log=lines.append,
    )
    assert torch.equal(one.state_dict()["net.0.weight"], v1.state_dict()["net.0.weight"])
    assert not torch.equal(one.state_dict()["net.3.weight"], v1.state_dict()["net.3.weight"])
    assert "warm start from v1.pt: 6 tensors loaded" in lines  # mean, std, two layers
    two, _ = fit(frozen_cfg, *split, tabular_spec(prep), task=TASK, init_state=init, log=lines.append)
    assert not torch.equal(two.state_dict()["net.0.weight"], v1.state_dict()["net.0.weight"])
    assert "unfrozen from epoch 2: net.0" in lines


def test_fine_tuning_from_v1_on_shifted_data_reaches_the_from_scratch_loss_in_fewer_epochs(
    tmp_path: Path,
) -> None:
    cfg = TrainingConfig(
        hidden_sizes=[32, 16], epochs=25, learning_rate=3e-4, early_stopping_patience=25, device="cpu"
    )
    prep_a, split_a = _data({"A": 0.9, "B": 0.1}, seed=3)
    v1, _ = fit(cfg, *split_a, tabular_spec(prep_a), task=TASK, log=lambda _: None)
    init = tmp_path / "v1.pt"
    torch.save({"state_dict": v1.state_dict()}, init)
    prep_b, split_b = _data({"A": 0.3, "B": 0.7}, seed=4)  # scanner B takes over
    assert prep_b.encoded_names == prep_a.encoded_names  # the same inputs: every tensor carries over
    _, scratch = fit(cfg, *split_b, tabular_spec(prep_b), task=TASK, log=lambda _: None)
    _, tuned = fit(cfg, *split_b, tabular_spec(prep_b), task=TASK, init_state=init, log=lambda _: None)
    target = min(h["val_loss"] for h in scratch)
    epochs_scratch = next(int(h["epoch"]) for h in scratch if h["val_loss"] <= target * 1.02)
    epochs_tuned = next((int(h["epoch"]) for h in tuned if h["val_loss"] <= target * 1.02), None)
    assert epochs_tuned is not None and epochs_tuned < epochs_scratch, (epochs_tuned, epochs_scratch)


def test_a_warm_started_retraining_starts_from_the_production_version() -> None:
    from components.common.config import KubeloopConfig
    from components.monitor.assemble import retraining_config

    base = {"name": "screening", "dataset": {"path": "x.csv", "label": "label"}}
    cold = retraining_config(KubeloopConfig.model_validate(base), "/data/new.parquet")
    assert cold.training.init_from is None
    warm_config = {**base, "monitoring": {"retraining": {"warm_start": True}}}
    warm = retraining_config(KubeloopConfig.model_validate(warm_config), "/data/new.parquet")
    assert warm.training.init_from is not None
    assert (warm.training.init_from.model, warm.training.init_from.version) == ("screening", "production")
    assert warm.dataset.path == "/data/new.parquet" and warm.training.epochs == cold.training.epochs
    gentler = {"warm_start": True, "warm_start_epochs": 3, "warm_start_learning_rate": 0.0002}
    tuned = retraining_config(
        KubeloopConfig.model_validate({**base, "monitoring": {"retraining": gentler}}), "/d.parquet"
    )
    assert (tuned.training.epochs, tuned.training.learning_rate) == (3, 0.0002)
    cold_fewer = {**base, "monitoring": {"retraining": {"warm_start_epochs": 3}}}  # no warm start: as set
    assert retraining_config(KubeloopConfig.model_validate(cold_fewer), "/d.parquet").training.epochs == (
        cold.training.epochs
    )


def test_a_retrain_policy_asks_for_warm_starts_in_camel_case() -> None:
    from components.common.config import KubeloopConfig
    from operators.crds import retrain_policy_crd
    from operators.retrain import monitoring_section

    section = monitoring_section({"retraining": {"warmStart": True, "deploy": "canary"}})
    assert section["retraining"] == {"warm_start": True, "deploy": "canary"}
    config = KubeloopConfig.model_validate(
        {"name": "s", "dataset": {"path": "x.csv", "label": "y"}, "monitoring": section}
    )
    assert config.monitoring.retraining.warm_start is True
    schema = retrain_policy_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    warm = schema["properties"]["spec"]["properties"]["retraining"]["properties"]["warmStart"]
    # No server-side default (it would override the ConfigMap's); the description says it.
    assert warm == {"type": "boolean", "description": warm["description"]}
    assert warm["description"].endswith(
        "Unset: the ConfigMap's monitoring.retraining.warm_start, else false."
    )


def test_torchvision_weights_saved_from_the_bare_network_warm_start_a_grey_classifier(tmp_path: Path) -> None:
    """What a team brings into its store: `torchvision.models.resnet18(weights=...).state_dict()`
    (here random, as nothing is downloaded), RGB, 1000 classes; kubeloop's network is grey with 3."""
    import torchvision

    from components.train.cnn import torchvision_model

    torch.manual_seed(0)
    imagenet = torchvision.models.resnet18(weights=None).state_dict()
    torch.save(imagenet, tmp_path / "resnet18.pth")
    spec = ModelSpec(
        modality="images",
        task="multiclass",
        input_names=["image"],
        numeric=[],
        cardinalities={},
        encoding="pixels",
        classes=["a", "b", "c"],
        n_outputs=3,
        preprocessing={},
        input_shape=[1, 32, 32],
        input_mean=[0.5],
        input_std=[0.25],
    )
    model = torchvision_model(spec, "resnet18")
    loaded, fresh = load_initial_weights(model, torch.load(tmp_path / "resnet18.pth", weights_only=True))
    assert sorted(fresh) == ["mean", "network.fc.bias", "network.fc.weight", "std"]  # the head and ours
    assert len(loaded) == len(imagenet) - 2
    state = model.state_dict()
    # The RGB kernel summed over its channels: a grey image gives what its RGB copy gave.
    torch.testing.assert_close(state["network.conv1.weight"], imagenet["conv1.weight"].sum(1, keepdim=True))
    statistics = "layer4.1.bn2.running_var"
    torch.testing.assert_close(state[f"network.{statistics}"], imagenet[statistics])
