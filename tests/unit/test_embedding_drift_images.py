"""Embedding drift on real image embeddings: the screening generator's mammograms under each
change served images see, embedded by the built-in CNN as serving embeds them, judged by our
four methods and by Evidently's with the same defaults; reference sizes below and above 1,000.

The network is the built-in small CNN with seeded weights whose batch-norm statistics are fitted
on scanner-A images, so its embeddings have the scale a trained network's have (components of
0.07 to 2). With the statistics left at their initial values the components are 1e-7 to 2e-3,
and Evidently's model method misbehaves: it fits an SGD logistic regression to the embeddings
as they are, and at that scale its L2 penalty (alpha 1e-4) outweighs the fit; it then misses a
resolution change that a logistic regression on standardised components sees. Ours (Fisher's
discriminant) does not depend on the components' scale."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.ndimage import gaussian_filter
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from components.common.modalities.image_prep import ImageInputs, prepare
from components.monitor.embedding_drift import METHODS, embedding_drift
from components.train.cnn import SmallCNN
from examples.screening_images.generate import generate
from tests.unit.test_embedding_drift import evidently_method

INPUTS = ImageInputs(size=(32, 32), channels=1, fit="letterbox", mean=[0.0], std=[1.0])
REAL_CHANGES = {"brightness", "resolution", "blur", "new device"}
"""Cases that change the images themselves (a class-prior shift changes only how many show a
finding, which an untrained network's features need not see)."""


def images(rows: int, seed: int, case: str = "no shift") -> list[np.ndarray]:
    """`rows` scanner-A images (15% with a finding) under `case`, as decoded pixels."""
    scanners, prevalence, scale = {"A": 1.0}, 0.15, 0.5
    if case == "new device":
        scanners = {"A": 0.6, "B": 0.4}
    elif case == "class prior":
        prevalence = 0.6
    elif case == "resolution":
        scale = 0.35  # a coarser detector: fewer pixels for the same anatomy
    _, pixels = generate(rows=rows, prevalence=prevalence, scanners=scanners, seed=seed, scale=scale)
    if case == "brightness":  # a longer exposure: every intensity 40% higher, clipped at full scale
        return [np.minimum(p.astype(np.float64) * 1.4, np.iinfo(p.dtype).max).astype(p.dtype) for p in pixels]
    if case == "blur":
        return [gaussian_filter(p.astype(np.float64), 1.2).astype(p.dtype) for p in pixels]
    return pixels


def seeded_network() -> SmallCNN:
    torch.manual_seed(0)
    return SmallCNN(1, [16, 32, 64], 0.0, 1).eval()


@pytest.fixture(scope="module")
def network() -> SmallCNN:
    """The seeded CNN with its batch-norm statistics fitted on 1,200 scanner-A images."""
    network = seeded_network().train()
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # a plain average over every batch
    with torch.no_grad():
        for seed in (100, 101, 102):
            network.embed(torch.from_numpy(np.stack([prepare(p, INPUTS) for p in images(400, seed)])))
    return network.eval()


def embed(network: SmallCNN, pixels: list[np.ndarray]) -> np.ndarray:
    batch = torch.from_numpy(np.stack([prepare(p, INPUTS) for p in pixels]))
    with torch.no_grad():
        return network.embed(batch).numpy().astype(np.float32)


@pytest.mark.parametrize("reference_rows", [600, 1500])
def test_verdicts_on_real_image_embeddings_are_evidentlys(network: SmallCNN, reference_rows: int) -> None:
    reference = embed(network, images(reference_rows, seed=1))
    differences, caught = [], set()
    for case in ("no shift", "brightness", "resolution", "blur", "new device", "class prior"):
        current = embed(network, images(500, seed=2, case=case))
        for method in METHODS:
            ours = embedding_drift(reference, current, method)
            theirs = evidently_method(method, reference_rows)(pd.DataFrame(current), pd.DataFrame(reference))
            if ours.drifted != bool(theirs[1]):
                differences.append(f"{case} {method}: ours {ours.score:.4f}, Evidently's {theirs[0]:.4f}")
            if method == "model" and ours.drifted:
                caught.add(case)
    assert not differences, "\n".join(differences)
    assert "no shift" not in caught and REAL_CHANGES <= caught, caught  # the default method's verdicts


def test_evidentlys_unscaled_sgd_misses_a_resolution_change_that_standardised_components_show() -> None:
    network = seeded_network()  # batch norm at its initial statistics: components of 1e-7 to 2e-3
    reference = embed(network, images(1500, seed=1))
    current = embed(network, images(500, seed=2, case="resolution"))
    assert reference.std(axis=0).max() < 0.01
    data = np.vstack([reference, current])
    target = np.r_[np.ones(len(reference)), np.zeros(len(current))]
    train_x, test_x, train_y, test_y = train_test_split(
        data, target, test_size=0.5, random_state=42, shuffle=True
    )

    def held_out_auc(classifier: object) -> float:  # Evidently's split and classifier seed
        classifier.fit(train_x, train_y)  # type: ignore[attr-defined]
        return float(roc_auc_score(test_y, classifier.predict_proba(test_x)[:, 1]))  # type: ignore[attr-defined]

    unscaled = held_out_auc(SGDClassifier(loss="log_loss", random_state=42))
    standardised = held_out_auc(make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)))
    evidently_verdict = evidently_method("model", 1500)(pd.DataFrame(current), pd.DataFrame(reference))
    ours = embedding_drift(reference, current, "model")
    assert unscaled < 0.55 < standardised and not evidently_verdict[1]  # Evidently: no drift
    assert ours.drifted and abs(ours.score - standardised) < 0.05  # ours: the standardised fit's answer
