"""Local stand-in for API Gateway's WebSocket API and Lambda's alias routing (the sandbox's)."""

from orchestrator.gateway.edge import EdgeFunction, EdgeFunctionCode
from orchestrator.gateway.metrics import MetricRecorder
from orchestrator.gateway.runtime import FunctionNotConfigured, Invocation, LambdaRuntime, choose_version
from orchestrator.gateway.server import DEFAULT_STAGES, Gateway, GatewayUrls, Stage
from orchestrator.gateway.sqs_poller import QueueBinding, SqsPoller

__all__ = [
    "DEFAULT_STAGES",
    "EdgeFunction",
    "EdgeFunctionCode",
    "FunctionNotConfigured",
    "Gateway",
    "GatewayUrls",
    "Invocation",
    "LambdaRuntime",
    "MetricRecorder",
    "QueueBinding",
    "SqsPoller",
    "Stage",
    "choose_version",
]
