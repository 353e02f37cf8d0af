"""Retry and Catch policies shared by every state machine: one place, so they read the same.

Transient failures (Lambda service errors, throttling, a task's own TransientAwsError) are
retried with exponential back-off and full jitter. Task timeouts are retried once: every
release task is idempotent. Everything else is caught by the state's Catch.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_stepfunctions as sfn

TRANSIENT_LAMBDA_ERRORS = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "Lambda.ClientExecutionTimeoutException",
    "TransientAwsError",
]
TIMEOUT_ERRORS = ["States.Timeout", "Sandbox.Timedout"]
TRANSIENT_DYNAMODB_ERRORS = [
    "DynamoDB.ProvisionedThroughputExceededException",
    "DynamoDB.ThrottlingException",
    "DynamoDB.RequestLimitExceeded",
    "DynamoDB.InternalServerErrorException",
    "DynamoDB.TransactionConflictException",
]
FAILURE_PATH = "$.failure"


def retry_transient(
    state: sfn.TaskStateBase,
    *,
    attempts: int = 4,
    retry_timeouts: bool = True,
    errors: list[str] | None = None,
) -> sfn.TaskStateBase:
    state.add_retry(
        errors=errors or TRANSIENT_LAMBDA_ERRORS,
        interval=Duration.seconds(1),
        backoff_rate=2.0,
        max_attempts=attempts,
        max_delay=Duration.seconds(30),
        jitter_strategy=sfn.JitterType.FULL,
    )
    if retry_timeouts:
        state.add_retry(
            errors=TIMEOUT_ERRORS,
            interval=Duration.seconds(2),
            backoff_rate=2.0,
            max_attempts=1,
            jitter_strategy=sfn.JitterType.FULL,
        )
    return state


def catch_all(state: sfn.TaskStateBase, handler: sfn.IChainable) -> sfn.TaskStateBase:
    """Anything left after the retries goes to `handler`, with {Error, Cause} at $.failure."""
    state.add_catch(handler, errors=["States.ALL"], result_path=FAILURE_PATH)
    return state
