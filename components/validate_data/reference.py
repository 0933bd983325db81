"""Which reference profile new data is checked against: a named dataset, or the champion's."""

from __future__ import annotations

from typing import Any

from components.common.config import KubeloopConfig
from components.common.data import local_path
from components.common.registry import Registry
from components.common.store import Store
from components.validate_data.checks import feature_columns
from components.validate_data.devices import device_summary
from components.validate_data.profile import build_profile

PROFILE_FILE = "data_profile.json"
SUITE_FILE = "expectation_suite.json"


def reference_profile(store: Store, config: KubeloopConfig) -> dict[str, Any] | None:
    """The profile to validate against, or None (first model, or profiles switched off).

    `validation.profile.reference_data` wins; otherwise the profile registered with the
    production version of this model.
    """
    tol = config.validation.profile
    if tol.reference_data:
        with local_path(tol.reference_data) as path:
            modality = config.dataset.make_modality()
            frame = modality.gate_table(modality.read(path, tol.reference_data))
        profiled = modality.scalar_columns(feature_columns(frame, config.dataset))
        devices = device_summary(frame, config.dataset.device_column, modality.modes(frame), profiled)
        return build_profile(
            frame, config.dataset, profiled, source=f"reference {tol.reference_data}", devices=devices
        )
    if not tol.use_champion:
        return None
    registry = Registry(store)
    champion = registry.champion(config.name)
    if champion is None:
        return None
    key = f"{registry.version_prefix(config.name, champion)}/{PROFILE_FILE}"
    if not store.exists(key):
        return None
    profile = dict(store.read_json(key))
    profile["source"] = f"champion {config.name} v{champion}"
    return profile
