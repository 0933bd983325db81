"""KFP component of the deploy step (logic in components.deploy.step)."""

from kfp import dsl

from components.common.images import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def deploy(config_json: str, store_uri: str, run_id: str, version: str, apply_to_cluster: bool) -> str:
    """Roll the registered version out (deployment.auto_deploy, deployment.strategy)."""
    from components.common.step import step_context
    from components.deploy.step import run

    with step_context(config_json, store_uri, run_id, "deploy") as ctx:
        return run(ctx, version, apply_to_cluster)
