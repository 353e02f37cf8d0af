"""AWS Budgets for the environment's cost-allocation tags, notifying the operations topic.

Daily budget: ACTUAL spend at the alert threshold and at 100% (AWS Budgets offers no forecast
alerts for daily budgets). Monthly budget: FORECASTED at 100% (the month is heading over) and
ACTUAL at the threshold and at 100%.

The operations topic is KMS-encrypted and TLS-only (infra/messaging_construct.py): Budgets
publishes over HTTPS, so the topic's `aws:SecureTransport = false` deny never matches it; the
topic policy lets `budgets.amazonaws.com` publish for this account (aws:SourceAccount; an
`aws:SourceArn` condition is left out because Budgets' notifications have been reported to
fail with it), and the messaging key lets Budgets encrypt the message for the topic.
"""

from __future__ import annotations

from aws_cdk import aws_budgets as budgets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct

from contracts import names
from infra.config import EnvironmentConfig

BUDGETS_PRINCIPAL = "budgets.amazonaws.com"


def _notification(
    kind: str, threshold: float, topic: sns.ITopic
) -> budgets.CfnBudget.NotificationWithSubscribersProperty:
    return budgets.CfnBudget.NotificationWithSubscribersProperty(
        notification=budgets.CfnBudget.NotificationProperty(
            notification_type=kind,
            comparison_operator="GREATER_THAN",
            threshold=threshold,
            threshold_type="PERCENTAGE",
        ),
        subscribers=[budgets.CfnBudget.SubscriberProperty(subscription_type="SNS", address=topic.topic_arn)],
    )


class CostBudgets(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        operations_topic: sns.ITopic,
        messaging_key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        env = config.environment
        budget = config.budget
        operations_topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowBudgetsNotifications",
                principals=[iam.ServicePrincipal(BUDGETS_PRINCIPAL)],
                actions=["sns:Publish"],
                resources=[operations_topic.topic_arn],
                conditions={"StringEquals": {"aws:SourceAccount": config.account}},
            )
        )
        messaging_key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowBudgetsToEncryptedTopics",
                principals=[iam.ServicePrincipal(BUDGETS_PRINCIPAL)],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": config.account}},
            )
        )
        # Cost Explorer filters the same tags the cost check queries: Project and Environment.
        filters = {"TagKeyValue": [f"user:Project${names.PROJECT}", f"user:Environment${env}"]}
        threshold = budget.alert_threshold_percent
        plans = {
            "daily": ("DAILY", budget.daily_limit_usd, [("ACTUAL", threshold), ("ACTUAL", 100.0)]),
            "monthly": (
                "MONTHLY",
                budget.monthly_usd,
                [("FORECASTED", 100.0), ("ACTUAL", threshold), ("ACTUAL", 100.0)],
            ),
        }
        self.budgets: dict[str, budgets.CfnBudget] = {}
        for period, (unit, limit, alerts) in plans.items():
            unique = sorted(set(alerts))
            self.budgets[period] = budgets.CfnBudget(
                self,
                period.capitalize(),
                budget=budgets.CfnBudget.BudgetDataProperty(
                    budget_name=names.budget_name(env, period),
                    budget_type="COST",
                    time_unit=unit,
                    budget_limit=budgets.CfnBudget.SpendProperty(amount=limit, unit="USD"),
                    cost_filters=filters,
                ),
                notifications_with_subscribers=[
                    _notification(kind, value, operations_topic) for kind, value in unique
                ],
            )
            # Budgets reads the topic policy when it validates the subscriber.
            self.budgets[period].node.add_dependency(operations_topic)
