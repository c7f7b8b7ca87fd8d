"""One unary gRPC call with grpcio (gRPC C-core), an independent client.

    call.py SOCKET METHOD AUTHORITY

AUTHORITY is `default` (grpcio's own: the socket path percent-encoded), a
literal value set with grpc.default_authority (the socket path, localhost).
The request is an empty message; the raw response is printed as hex.
Exits non-zero with grpcio's status on failure.
"""
import sys

import grpc

socket, method, authority = sys.argv[1:4]
options = [] if authority == "default" else [("grpc.default_authority", authority)]
with grpc.insecure_channel(f"unix:{socket}", options=options) as channel:
    call = channel.unary_unary(
        method,
        request_serializer=lambda _: b"",
        response_deserializer=lambda raw: raw,
    )
    try:
        response = call(None, timeout=10)
    except grpc.RpcError as e:
        print(f"{e.code()}: {e.details()}", file=sys.stderr)
        sys.exit(1)
print(response.hex())
