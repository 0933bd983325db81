"""The task seam holds: no step, pipeline, CLI, loop or operator module asks which task it has."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TASK_NAMES = re.compile(r"""["'](binary|multiclass)["']|\b(BinaryTask|MulticlassTask|is_positive)\b""")
# Where a task is named on purpose: the task package, the config's choice, the schema's default.
ALLOWED = {"components/common/tasks", "components/common/config.py", "components/common/artifacts.py"}


def test_no_module_outside_the_task_package_names_a_task() -> None:
    offenders = []
    for folder in ("components", "pipelines", "cli", "loop", "operators"):
        for path in sorted((REPO / folder).rglob("*.py")):
            relative = path.relative_to(REPO).as_posix()
            if any(relative == a or relative.startswith(a + "/") for a in ALLOWED):
                continue
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                if TASK_NAMES.search(line):
                    offenders.append(f"{relative}:{number}: {line.strip()}")
    assert not offenders, "task-specific code belongs in components/common/tasks:\n" + "\n".join(offenders)


def test_the_detector_finds_a_branch_on_the_task() -> None:
    assert TASK_NAMES.search('if schema.task == "multiclass":')
    assert TASK_NAMES.search("isinstance(task, BinaryTask)")
    assert not TASK_NAMES.search("task.decide(p, point)")
