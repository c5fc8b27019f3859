#!/bin/sh
# The streaming function's handler (template.yaml, StreamingFunction; docs/streaming.md). The AWS
# Lambda Web Adapter layer runs this script once per execution environment, waits for /health,
# and then relays each invocation to the server as HTTP, streaming the response back
# (AWS_LWA_INVOKE_MODE=response_stream). The app is the same one the Mangum handler serves.
exec python3 -m uvicorn imagegw.entrypoints.app:create_app --factory \
  --host 127.0.0.1 --port "${PORT:-8080}" --no-access-log --log-level warning
