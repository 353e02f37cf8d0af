"""IAM for the sandbox: who calls (identity), what their policies allow (evaluated with @cloud-copilot/iam-simulate), and what was observed."""
