"""Dockerfiles, checked statically (no Docker engine here): pinned bases, non-root, lean final stage."""

from __future__ import annotations

import re
import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from components.common.cluster import RUN_AS
from components.common.images import (
    DOCKERFILES,
    IMAGE,
    OPERATOR_IMAGE,
    SERVING_IMAGE,
    TRAINING_GPU_IMAGE,
    VERSION,
)
from tests.conftest import REPO

PYTHON = {IMAGE: "3.11", TRAINING_GPU_IMAGE: "3.11", OPERATOR_IMAGE: "3.11", SERVING_IMAGE: "3.12"}
LOCK = {
    IMAGE: "requirements/main.lock",
    TRAINING_GPU_IMAGE: "requirements/main.lock",
    OPERATOR_IMAGE: "requirements/main.lock",
    SERVING_IMAGE: "requirements/serving.lock",
}
BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|build-essential|make|git|curl|wget)\b")


@dataclass
class Stage:
    base: str
    name: str = ""
    instructions: list[tuple[str, str]] = field(default_factory=list)


def parse(path: Path) -> list[Stage]:
    """Stages of a Dockerfile, with ARG defaults declared before the first FROM substituted."""
    text = re.sub(r"\\\n", " ", path.read_text())
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "ARG" and not stages and "=" in rest:
            key, value = rest.split("=", 1)
            args[key.strip()] = value.strip()
        elif word == "FROM":
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], rest.split()[0])
            name = rest.split()[2] if " AS " in rest.upper() else ""
            stages.append(Stage(base, name))
        elif stages:
            stages[-1].instructions.append((word, rest))
    return stages


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_each_image_has_a_pinned_multi_stage_non_root_dockerfile(image: str) -> None:
    stages = parse(REPO / DOCKERFILES[image])
    assert len(stages) >= 2, "build in one stage, ship another without the build's leftovers"
    for stage in stages:
        if stage.base in {s.name for s in stages}:
            continue
        # A pinned base: an exact patch version (or a digest), never latest or a moving minor tag.
        assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", stage.base), stage.base
        assert stage.base.startswith(f"python:{PYTHON[image]}."), stage.base
    final = stages[-1]
    users = [rest for word, rest in final.instructions if word == "USER"]
    assert users == [f"{RUN_AS}:{RUN_AS}"], "the final stage runs as the kubeloop user (runAsNonRoot)"
    for word, rest in final.instructions:
        installs = "pip install" in rest or "apt-get" in rest
        assert not (word == "RUN" and installs), f"installs in the final stage: {rest}"
        assert not (word == "RUN" and BUILD_TOOLS.search(rest)), rest
        assert not (word == "COPY" and "requirements" in rest), "locks and sources stay in the build stage"
    copies = [rest for stage in stages for word, rest in stage.instructions if word == "COPY"]
    assert any(LOCK[image] in c for c in copies), f"{DOCKERFILES[image]} installs {LOCK[image]}"
    assert any(c.startswith("--from=") and "/opt/venv" in c for c in copies)


def test_every_dockerfile_builds_a_named_image_and_the_versions_agree() -> None:
    shipped = {str(p.relative_to(REPO)) for p in (REPO / "images").glob("*/Dockerfile")}
    assert shipped == set(DOCKERFILES.values())
    assert all(image.endswith(f":{VERSION}") for image in DOCKERFILES)
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["version"] == VERSION
    # The Python of each image is the one the tests run that environment on.
    serving = (REPO / ".venv-serving" / "pyvenv.cfg").read_text()
    main = (REPO / ".venv" / "pyvenv.cfg").read_text()
    for image, dockerfile in DOCKERFILES.items():
        patch = re.search(r"python:(\d+\.\d+\.\d+)", (REPO / dockerfile).read_text())
        assert patch is not None
        config = serving if image == SERVING_IMAGE else main  # venv writes "version", uv "version_info"
        assert re.search(rf"^version(_info)? = {re.escape(patch.group(1))}$", config, re.M), dockerfile


def test_the_cuda_image_installs_the_locked_cuda_torch_and_the_step_image_the_cpu_one() -> None:
    lock = (REPO / "requirements" / "main.lock").read_text()
    # The lock is PyPI's CUDA build with its CUDA libraries pinned, so installs are reproducible.
    assert re.search(r"^torch==\d+\.\d+\.\d+$", lock, re.M) and re.search(r"^torchvision==", lock, re.M)
    assert re.search(r"^nvidia-cudnn-cu\d+==", lock, re.M) and re.search(r"^triton==", lock, re.M)
    cuda = (REPO / DOCKERFILES[TRAINING_GPU_IMAGE]).read_text()
    assert "pip install -r requirements/main.lock" in cuda and "whl/cpu" not in cuda
    step = (REPO / DOCKERFILES[IMAGE]).read_text()
    assert "download.pytorch.org/whl/cpu" in step and "+cpu" in step
    assert "grep -vE '^(nvidia-|cuda-|triton==|torch==|torchvision==)'" in step


def test_the_serving_image_starts_the_seldon_model_the_deployment_names() -> None:
    from components.deploy.seldondeployment import MODEL_CLASS

    text = (REPO / DOCKERFILES[SERVING_IMAGE]).read_text()
    assert f"MODEL_NAME={MODEL_CLASS}" in text
    assert 'seldon-core-microservice \\"$MODEL_NAME\\"' in text
    assert (REPO / (MODEL_CLASS.rsplit(".", 1)[0].replace(".", "/") + ".py")).exists()


def test_the_serving_image_labels_its_licences() -> None:
    """seldon-core is BSL 1.1 from 1.18: the image says so where a registry scanner reads it."""
    final = parse(REPO / DOCKERFILES[SERVING_IMAGE])[-1]
    labels = {
        key: value
        for word, rest in final.instructions
        if word == "LABEL"
        for key, value in re.findall(r'([\w.-]+)="([^"]*)"', rest)
    }
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0 AND BUSL-1.1"
    assert "production use needs a licence from Seldon" in labels["dev.kubeloop.licence.seldon-core"]
    lock = (REPO / "requirements" / "serving.lock").read_text()
    assert "seldon-core==1.19." in lock  # a change of version must revisit the labels


def test_make_images_prints_a_build_and_a_push_per_image() -> None:
    out = subprocess.run(
        ["make", "-s", "images"], cwd=REPO, capture_output=True, text=True, timeout=120, check=True
    ).stdout
    for image, dockerfile in DOCKERFILES.items():
        assert f"docker build -f {dockerfile} " in out and f"-t {image} ." in out
        assert f"docker push {image}" in out


def test_the_build_context_leaves_out_environments_and_run_outputs() -> None:
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".venv-serving", ".tools", ".kubeloop"} <= set(ignored)


def test_the_derived_image_example_puts_the_teams_model_on_the_import_path() -> None:
    import yaml

    folder = REPO / "examples" / "own_model"
    (stage,) = parse(folder / "Dockerfile")
    assert stage.base == IMAGE  # the step image of this release (pin it by digest when building)
    copies = [rest for word, rest in stage.instructions if word == "COPY"]
    factory = yaml.safe_load((folder / "config.yaml").read_text())["training"]["model"]["factory"]
    module = factory.split(":")[0]
    assert any(f"{module}.py /opt/team/{module}.py" in c for c in copies)
    assert ("ENV", "PYTHONPATH=/opt/team") in stage.instructions
    assert stage.instructions[-1] == ("USER", "10001:10001")
