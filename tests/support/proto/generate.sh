#!/bin/sh
# Regenerate push_pb2.py from push.proto (needs the dev tool grpcio-tools).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
python=${PYTHON:-python3}
cd "$root"
"$python" -m grpc_tools.protoc -I. --python_out=. --pyi_out=. tests/support/proto/push.proto
