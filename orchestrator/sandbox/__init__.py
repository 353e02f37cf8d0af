"""The local sandbox: moto, a real Redis, the WebSocket gateway and the staging stage, on loopback."""
