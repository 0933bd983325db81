"""The live-log filter drops kfp's executor-input dumps and nothing else."""

from __future__ import annotations

import io

from pipelines.output_filter import ExecutorDumpFilter


def test_dump_is_dropped_and_step_output_kept() -> None:
    out = io.StringIO()
    log = ExecutorDumpFilter(out)
    text = (
        "    [KFP Executor 1 INFO]: Looking for component\n    [KFP Executor 2 INFO]: Got executor_input:\n"
        '    {\n        "inputs": {\n        }\n    }\n'
        "    training on 10 rows\n    [KFP Executor 3 INFO]: done\n"
        "    epoch   1/4  train_loss 0.5\n"
    )
    for chunk in (text[:30], text[30:77], text[77:]):  # arbitrary write boundaries
        log.write(chunk)
    assert out.getvalue() == (
        "    [KFP Executor 1 INFO]: Looking for component\n"
        "    [KFP Executor 2 INFO]: Got executor_input:\n"
        "    training on 10 rows\n    [KFP Executor 3 INFO]: done\n"
        "    epoch   1/4  train_loss 0.5\n"
    )


def test_partial_lines_wait_for_their_end() -> None:
    out = io.StringIO()
    log = ExecutorDumpFilter(out)
    log.write("epoch 1")
    assert out.getvalue() == ""
    log.write(" done\n")
    assert out.getvalue() == "epoch 1 done\n"
