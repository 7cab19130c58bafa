"""sample_app, with a gRPC channel made at import: forking it is unsafe."""

import grpc

from tests.node.envs.sample_app.__main__ import main

CHANNEL = grpc.insecure_channel("127.0.0.1:9")

if __name__ == "__main__":
    main()
