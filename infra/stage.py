"""One deployable Stage per environment, and the App that holds them with the security gates."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aws_cdk import App, Environment, Stage
from constructs import Construct

from contracts import names
from infra.config import EnvironmentConfig, load_config
from infra.deploy_role_stack import DeployRoleStack
from infra.nag import attach_security_gates
from infra.nag_acknowledgments import acknowledge
from infra.stacks.realtime_analytics_stack import RealtimeAnalyticsStack


class RealtimeAnalyticsStage(Stage):
    def __init__(self, scope: Construct, construct_id: str, *, config: EnvironmentConfig) -> None:
        super().__init__(scope, construct_id, env=Environment(account=config.account, region=config.region))
        self.config = config
        self.main = RealtimeAnalyticsStack(self, names.MAIN_STACK_ID, config=config)
        self.deploy_role: DeployRoleStack | None = None
        if config.deploy:
            # Deployed once by an administrator before the pipeline can assume the role.
            self.deploy_role = DeployRoleStack(
                self,
                "GitHubDeploy",
                stack_name=f"{names.prefix(config.environment)}-github-deploy",
                env=Environment(account=config.account, region=config.region),
                environment=config.environment,
                repository=config.deploy.github_repository,
                artifact_bucket_name=config.deploy.artifact_bucket_name,
                oidc_provider_arn=config.deploy.oidc_provider_arn,
                cdk_qualifier=config.deploy.cdk_qualifier,
            )
        acknowledge(self, config.cache.engine)


def build_app(
    configs: Sequence[EnvironmentConfig] | None = None,
    outdir: str | Path | None = None,
    gates: bool = True,
) -> App:
    """The CDK app: a Stage per environment (staging, production), gates attached."""
    configs = list(configs) if configs is not None else [load_config(env) for env in names.ENVIRONMENTS]
    app = App(outdir=str(outdir) if outdir else None)
    for config in configs:
        RealtimeAnalyticsStage(app, names.stage_id(config.environment), config=config)
    if gates:
        attach_security_gates(app)
    return app
