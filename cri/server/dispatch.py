"""Builds gRPC handlers for every RPC of a CRI service from its proto descriptor.

Why table-driven: the servicers implement the v1 surface once. The same methods serve v1alpha2,
because both packages use the same field numbers: an alpha request parses as the v1 message and a
v1 response serialises into bytes the alpha client reads as its own message (containerd's
`alpha.go` glue does the same by hand). RPCs a servicer lacks answer UNIMPLEMENTED with their name.

This is also the one place where domain errors become gRPC statuses, and where calls are logged.
"""

from __future__ import annotations

import contextvars
import itertools
import logging
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from types import ModuleType
from typing import Any

import grpc
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message

from cri.errors import CriError, Unavailable

log = logging.getLogger(__name__)

request_id: contextvars.ContextVar[int] = contextvars.ContextVar("request_id", default=0)
_request_ids = itertools.count(1)

# Reads are logged at DEBUG, everything that changes state at INFO.
_READ_PREFIXES = ("List", "Stream", "Version", "Status", "ImageStatus", "ImageFsInfo",
                  "PodSandboxStatus", "ContainerStatus", "ContainerStats", "PodSandboxStats",
                  "RuntimeConfig", "GetContainerEvents", "ListMetricDescriptors")

Gate = Callable[[], bool]


def _is_read(method: str) -> bool:
    return method.startswith(_READ_PREFIXES)


def _abort(context: grpc.ServicerContext, method: str, exc: BaseException) -> None:
    if isinstance(exc, CriError):
        log.info("%s failed: %s: %s", method, exc.code.name, exc.message)
        context.abort(exc.code, exc.message)
    log.error("%s failed unexpectedly:\n%s", method, "".join(traceback.format_exception(exc)))
    context.abort(grpc.StatusCode.INTERNAL, f"{method}: internal error: {exc}")


def _unary(
    full_name: str, impl: Callable[[Any], Message], ready: Gate
) -> Callable[[Any, grpc.ServicerContext], Message]:
    read = _is_read(full_name.rsplit("/", 1)[-1])

    def handle(request: Any, context: grpc.ServicerContext) -> Message:
        rid = next(_request_ids)
        request_id.set(rid)
        started = time.monotonic()
        try:
            if not ready():
                raise Unavailable("the runtime is still recovering its state; try again")
            response = impl(request)
        except grpc.RpcError:
            raise
        except BaseException as exc:  # noqa: BLE001 - every failure must become a status
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            _abort(context, full_name, exc)
            raise  # unreachable: abort raises
        elapsed_ms = (time.monotonic() - started) * 1000
        if read:
            log.debug("[%d] %s ok in %.1f ms", rid, full_name, elapsed_ms)
        else:
            log.info("[%d] %s ok in %.1f ms", rid, full_name, elapsed_ms)
        return response

    return handle


def _server_stream(
    full_name: str, impl: Callable[[Any, grpc.ServicerContext], Iterator[Message]], ready: Gate
) -> Callable[[Any, grpc.ServicerContext], Iterator[Message]]:
    def handle(request: Any, context: grpc.ServicerContext) -> Iterator[Message]:
        try:
            if not ready():
                raise Unavailable("the runtime is still recovering its state; try again")
            yield from impl(request, context)
        except grpc.RpcError:
            raise
        except Exception as exc:  # noqa: BLE001
            _abort(context, full_name, exc)

    return handle


def _unimplemented(full_name: str) -> Callable[[Any, grpc.ServicerContext], Any]:
    def handle(request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            f"{full_name} is not implemented by this runtime yet",
        )

    return handle


def build_handler(
    service: ServiceDescriptor,
    servicer: object,
    v1_module: ModuleType,
    ready: Gate,
    overrides: dict[str, Callable[..., Any]] | None = None,
    *,
    as_service: tuple[str, Sequence[str]] | None = None,
) -> grpc.GenericRpcHandler:
    """A handler for `service` whose messages are parsed as v1 messages.

    `as_service` (full name, method names) serves those of `service`'s methods under another
    service's name: how v1alpha2 is served from v1's descriptors."""
    full_name, names = as_service or (service.full_name, [m.name for m in service.methods])
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for name in names:
        method = service.methods_by_name[name]
        handlers[name] = _method_handler(full_name, method, servicer, v1_module, ready,
                                         (overrides or {}).get(name))
    return grpc.method_handlers_generic_handler(full_name, handlers)


def _method_handler(
    service_name: str,
    method: MethodDescriptor,
    servicer: object,
    v1_module: ModuleType,
    ready: Gate,
    override: Callable[..., Any] | None,
) -> grpc.RpcMethodHandler:
    full_name = f"/{service_name}/{method.name}"
    request_cls = getattr(v1_module, method.input_type.name)
    deserialize = request_cls.FromString
    serialize = _serialize
    impl = override or getattr(servicer, method.name, None)
    if method.server_streaming:
        if impl is None:
            return grpc.unary_stream_rpc_method_handler(
                _unimplemented(full_name), deserialize, serialize)
        return grpc.unary_stream_rpc_method_handler(
            _server_stream(full_name, impl, ready), deserialize, serialize)
    if impl is None:
        return grpc.unary_unary_rpc_method_handler(
            _unimplemented(full_name), deserialize, serialize)
    return grpc.unary_unary_rpc_method_handler(
        _unary(full_name, impl, ready), deserialize, serialize)


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()
