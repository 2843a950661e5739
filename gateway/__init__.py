"""The gateway: FastAPI on uvicorn, terminating the apps' WebSocket and REST
traffic and forwarding it to the stream actors. Any gateway serves any stream."""
