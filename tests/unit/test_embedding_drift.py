"""Embedding drift: Evidently's four methods with its defaults, the same verdicts as Evidently on
a matrix of served-image changes, and the MMD bootstrap done the right way round."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from evidently.legacy.metrics.data_drift import embedding_drift_methods as evidently

from components.monitor.embedding_drift import METHODS, THRESHOLDS, embedding_drift
from tests.embedding_cases import CASES, DRIFTED, window


def evidently_method(method: str, reference_rows: int) -> evidently.DriftMethod:
    """Evidently's method with its defaults (the model method bootstraps below 1,000 reference
    rows, as its EmbeddingsDriftMetric does)."""
    if method == "model":
        return evidently.model(bootstrap=reference_rows < 1000)
    return {"mmd": evidently.mmd, "distance": evidently.distance, "ratio": evidently.ratio}[method]()


@pytest.mark.parametrize(("reference_rows", "current_rows"), [(600, 500), (3000, 1500)])
def test_every_verdict_on_the_matrix_is_evidentlys(reference_rows: int, current_rows: int) -> None:
    reference = window("", reference_rows, reference=True, seed=1)
    differences, caught = [], 0
    for case in CASES:
        current = window(case, current_rows, seed=2)
        for method in METHODS:
            ours = embedding_drift(reference, current, method)
            theirs = evidently_method(method, reference_rows)(pd.DataFrame(current), pd.DataFrame(reference))
            if ours.drifted != bool(theirs[1]):
                differences.append(f"{case} {method}: ours {ours.score:.4f}, Evidently's {theirs[0]:.4f}")
            caught += ours.drifted and DRIFTED[case]
        assert embedding_drift(reference, current).method == "model"  # Evidently's default method
    assert not differences, "\n".join(differences)
    assert caught >= 14  # most real changes are caught by most methods: the matrix is not all quiet


def test_the_model_method_scores_what_a_linear_boundary_can_tell_apart() -> None:
    reference = window("", 3000, reference=True, seed=4)
    same = embedding_drift(reference, window("no shift", 3000, seed=5))
    brighter = embedding_drift(reference, window("brightness", 3000, seed=5))
    assert abs(same.score - 0.5) < 0.03 and not same.drifted
    assert brighter.score > 0.6 and brighter.drifted and brighter.threshold == THRESHOLDS["model"]
    small = embedding_drift(reference[:400], window("no shift", 400, seed=6))
    assert 0.5 < small.threshold < 0.55  # below 1,000 reference rows: chance's 95th percentile


def test_the_mmd_bootstrap_compares_with_the_top_of_its_null_not_the_bottom() -> None:
    """Evidently's MMD bootstrap calls drift when the statistic beats the 5th percentile of its
    null: two samples of one distribution are called drifted every time. Here the 95th
    percentile of a permutation null: a false alarm in about 5% of windows, real changes caught."""
    theirs, ours = 0, 0
    for seed in range(10):
        reference = window("", 300, dim=16, seed=100 + seed, reference=True)
        current = window("no shift", 300, dim=16, seed=200 + seed)
        theirs += bool(evidently.mmd(bootstrap=True)(pd.DataFrame(current), pd.DataFrame(reference))[1])
        ours += embedding_drift(reference, current, "mmd", bootstrap=True).drifted
    assert theirs >= 9 and ours <= 2
    reference = window("", 300, dim=16, seed=1, reference=True)
    for case in ("brightness", "new device", "resolution"):
        assert embedding_drift(reference, window(case, 300, dim=16, seed=3), "mmd", bootstrap=True).drifted, (
            case
        )


def test_bad_inputs_name_the_problem() -> None:
    reference = window("", 100, reference=True)
    with pytest.raises(ValueError, match="different models"):
        embedding_drift(reference, np.zeros((50, 7)))
    with pytest.raises(ValueError, match="unknown embedding drift method 'knn'"):
        embedding_drift(reference, reference, "knn")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rows, dimensions"):
        embedding_drift(reference, np.zeros(32))


def test_the_distance_methods_fixed_threshold_calls_noise_drift_in_many_dimensions() -> None:
    """Evidently's default distance threshold (0.2 between mean embeddings) is below the noise of
    a mean in 128 dimensions: a window of the reference's own distribution is called drifted,
    by Evidently and (for parity) by its default here. With `bootstrap` the distance is judged
    against resampled reference means: quiet on noise, and a real change is still caught."""
    reference = window("", 3000, dim=128, seed=3, reference=True)
    quiet = window("no shift", 1500, dim=128, seed=4)
    assert evidently.distance()(pd.DataFrame(quiet), pd.DataFrame(reference))[1]
    assert embedding_drift(reference, quiet, "distance").drifted
    assert not embedding_drift(reference, quiet, "distance", bootstrap=True).drifted
    assert embedding_drift(
        reference, window("brightness", 1500, dim=128, seed=4), "distance", bootstrap=True
    ).drifted
