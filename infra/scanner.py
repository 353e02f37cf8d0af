"""Scanner (checkov) suppressions on the one CloudFormation resource they concern, with a reason.

checkov reads `Metadata.checkov.skip` of each resource; keeping the helper here means every
suppression in the templates is written the same way and can be found with one search.
"""

from __future__ import annotations

from aws_cdk import CfnResource
from constructs import Construct


def checkov_skip(construct: Construct, check: str, reason: str) -> None:
    """Add a checkov skip for `check` on the construct's CloudFormation resource."""
    resource = construct if isinstance(construct, CfnResource) else construct.node.default_child
    if not isinstance(resource, CfnResource):
        raise TypeError(f"{construct.node.path} has no CloudFormation resource to annotate")
    existing = resource.get_metadata("checkov") or {"skip": []}
    existing["skip"] = [*existing.get("skip", []), {"id": check, "comment": reason}]
    resource.add_metadata("checkov", existing)
