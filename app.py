#!/usr/bin/env python3
"""CDK entry point (`cdk synth`, `cdk deploy`): one Stage per environment from config/*.json."""

from infra.stage import build_app

build_app().synth()
