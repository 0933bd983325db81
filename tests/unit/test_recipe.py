"""Pieces of the training recipe that must match what torch would do."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from components.common.modalities.batches import Shard
from components.common.tasks import BinaryTask
from components.train.recipe import clip_gradients
from tests.specs import tabular_spec


def _model_with_gradients(scale: float) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(7, 16), nn.ReLU(), nn.Linear(16, 1))
    (model(torch.randn(32, 7)).sum() * scale).backward()
    return model


@pytest.mark.parametrize("scale", [1e-3, 1.0, 100.0])
def test_clip_gradients_matches_torch_clip_grad_norm(scale: float) -> None:
    ours, theirs = _model_with_gradients(scale), _model_with_gradients(scale)
    before = [p.grad.clone() for p in ours.parameters() if p.grad is not None]
    clip_gradients(list(ours.parameters()), 1.0)
    nn.utils.clip_grad_norm_(list(theirs.parameters()), 1.0)
    for mine, reference in zip(ours.parameters(), theirs.parameters(), strict=True):
        assert mine.grad is not None and reference.grad is not None
        torch.testing.assert_close(mine.grad, reference.grad, rtol=1e-6, atol=1e-7)
    norm = torch.linalg.vector_norm(torch.cat([p.grad.reshape(-1) for p in ours.parameters()]))
    original = torch.linalg.vector_norm(torch.cat([g.reshape(-1) for g in before]))
    assert float(norm) == pytest.approx(min(float(original), 1.0), rel=1e-5)


@pytest.mark.parametrize(("rows", "replicas"), [(1000, 1), (1001, 2), (7, 3), (5, 8)])
def test_shard_order_is_exactly_the_distributed_samplers(
    rows: int, replicas: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    for rank in range(replicas):
        monkeypatch.setattr("components.common.modalities.batches.world", lambda rank=rank: (rank, replicas))
        shard = Shard(rows, seed=3)
        for epoch in (1, 2):
            shard.sampler.set_epoch(epoch)
            expected = list(shard.sampler)
            assert shard.order(epoch).tolist() == expected


def test_long_epochs_log_progress_lines_on_rank_0() -> None:
    from components.common.config import TrainingConfig
    from tests.conftest import encoded_screening
    from tests.specs import fit

    prep, x, y = encoded_screening(rows=600, seed=2)
    cfg = TrainingConfig(hidden_sizes=[8], epochs=1, batch_size=100, log_every_s=0.0, device="cpu")
    lines: list[str] = []
    fit(
        cfg,
        x[:500],
        y[:500],
        x[500:],
        y[500:],
        tabular_spec(prep),
        task=BinaryTask("label", 1),
        log=lines.append,
    )
    progress = [line for line in lines if line.startswith("  epoch 1/1  step")]
    assert [line.split()[3] for line in progress] == [f"{i}/5" for i in range(1, 6)]
    assert all("samples/s" in line and "loss" in line for line in progress)
    quiet: list[str] = []
    fit(
        cfg.model_copy(update={"log_every_s": 3600.0}),
        x[:500],
        y[:500],
        x[500:],
        y[500:],
        tabular_spec(prep),
        task=BinaryTask("label", 1),
        log=quiet.append,
    )
    assert len(quiet) == 1 and quiet[0].startswith("epoch   1/1")  # the epoch summary only
