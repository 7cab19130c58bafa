#!/usr/bin/env bash
# Generate golem_task_api/proto/ from proto/ into the tree rooted at $1.
# protoc sees the files under the virtual path golem_task_api/proto/ so that
# the generated modules import each other as golem_task_api.proto.*.
set -euo pipefail
out=${1:?usage: gen_proto.sh OUTPUT_ROOT}
py=${PY:-python}
gen=golem_task_api/proto
# The mypy plugins are scripts beside the interpreter.
case "$py" in */*) PATH="$(cd "$(dirname "$py")" && pwd):$PATH" ;; esac
mkdir -p "$out/$gen"
"$py" -m grpc_tools.protoc -I"$gen"=proto --python_out="$out" --mypy_out="$out" proto/*.proto >/dev/null
"$py" -m grpc_tools.protoc -I"$gen"=proto --grpc_python_out="$out" --mypy_grpc_out="$out" \
    proto/golem_task_api.proto >/dev/null
touch "$out/$gen/__init__.py"
