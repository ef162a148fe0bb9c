#!/bin/sh
# Regenerate profile_pb2.py from profile.proto (grpcio-tools is a dev-only tool: pip install grpcio-tools).
# Run from anywhere; the .proto is named by its path under src/ so its descriptor name is unique.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../../.." && pwd)
python=${PYTHON:-python3}
cd "$src"
"$python" -m grpc_tools.protoc -I. --python_out=. --pyi_out=. alloy_runner/telemetry/profiling/proto/profile.proto
