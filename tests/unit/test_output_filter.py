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


def test_a_step_traceback_keeps_only_its_exception_line() -> None:
    out = io.StringIO()
    log = ExecutorDumpFilter(out)
    log.write(
        "    smoke test: 5 epochs\n"
        "    Traceback (most recent call last):\n"
        '      File "<frozen runpy>", line 198, in _run_module_as_main\n'
        '      File "/work/components/validate_data/step.py", line 72, in run\n'
        "        raise GateFailed(message)\n"
        "    components.common.step.GateFailed: 1 data check(s) failed: label_classes(grade)\n"
        "    \n"
        "22:09:30.038 - ERROR - Task 'validate-data' finished with status FAILURE\n"
    )
    assert out.getvalue() == (
        "    smoke test: 5 epochs\n"
        "    components.common.step.GateFailed: 1 data check(s) failed: label_classes(grade)"
        "  (traceback hidden; --verbose shows it)\n"
        "    \n"
        "22:09:30.038 - ERROR - Task 'validate-data' finished with status FAILURE\n"
    )
