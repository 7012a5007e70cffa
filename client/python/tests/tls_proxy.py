"""A TLS front for the real server, as a deployment would put one (ingress, sidecar).

The TypeScript server listens in plaintext; this proxy terminates mutual TLS, asks for a bearer
token, and forwards every call byte for byte, so the persister's TLS and token settings are
tested against the real service behind it.
"""

from __future__ import annotations

from concurrent import futures

import grpc


class _Forwarder(grpc.GenericRpcHandler):
    def __init__(self, upstream: grpc.Channel, token: str):
        self._upstream = upstream
        self._authorization = ("authorization", f"Bearer {token}")

    def service(self, details: grpc.HandlerCallDetails):
        authorized = self._authorization in details.invocation_metadata
        if details.method.endswith("/ListAppIds"):
            call = self._upstream.unary_stream(details.method)

            def forward_stream(request: bytes, context: grpc.ServicerContext):
                self._check(authorized, context)
                try:
                    yield from call(request, timeout=context.time_remaining())
                except grpc.RpcError as error:
                    context.abort(error.code(), error.details())

            return grpc.unary_stream_rpc_method_handler(forward_stream)

        call = self._upstream.unary_unary(details.method)

        def forward(request: bytes, context: grpc.ServicerContext):
            self._check(authorized, context)
            try:
                return call(request, timeout=context.time_remaining())
            except grpc.RpcError as error:
                context.abort(error.code(), error.details())

        return grpc.unary_unary_rpc_method_handler(forward)

    @staticmethod
    def _check(authorized: bool, context: grpc.ServicerContext) -> None:
        if not authorized:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "a valid bearer token is required")


class TlsProxy:
    """Listens on 127.0.0.1 with mutual TLS and forwards to ``upstream_target`` in plaintext."""

    def __init__(
        self, upstream_target: str, *, certificate: bytes, private_key: bytes, client_ca: bytes, token: str
    ):
        self._upstream = grpc.insecure_channel(upstream_target)
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=8), handlers=[_Forwarder(self._upstream, token)]
        )
        credentials = grpc.ssl_server_credentials(
            [(private_key, certificate)], root_certificates=client_ca, require_client_auth=True
        )
        self.port = self._server.add_secure_port("127.0.0.1:0", credentials)
        self._server.start()

    def stop(self) -> None:
        self._server.stop(grace=None)
        self._upstream.close()
