"""What the Lambdas, the infrastructure and the CLI share at run time: physical names, the
release request and the execution state's sections.

Standard library and pydantic only (no CDK, no `infra`, no `orchestrator`): it ships in the
task Lambdas' asset.
"""
