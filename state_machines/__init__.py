"""State machine definitions as Python functions returning CDK chains; depends only on the CDK."""
