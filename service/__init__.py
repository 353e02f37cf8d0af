"""The real-time analytics service that a release deploys: WebSocket handlers, fan-out, alerts."""
