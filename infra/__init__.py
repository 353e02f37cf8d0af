"""AWS CDK v2 infrastructure: constructs (one per file), stacks, the per-environment Stage and security gates."""
