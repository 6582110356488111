"""The Kubernetes channel protocols, the HTTP upgrade rules and the token cache."""

from __future__ import annotations

import json

import pytest

from cri.errors import InvalidArgument, Unavailable
from cri.streaming import handshake
from cri.streaming import remotecommand as rc
from cri.streaming.requests import ExecRequest, TokenCache, validate_streams


def request(*headers: tuple[str, str], target: str = "/exec/abc") -> handshake.Request:
    head = f"GET {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    return handshake.parse_request(head.encode())


def test_route_and_query() -> None:
    r = request(("Host", "x"), target="/portforward/tok?port=80,443&port=8080")
    assert r.route() == (handshake.Kind.PORT_FORWARD, "tok")
    assert r.query == {"port": ["80,443", "8080"]}
    with pytest.raises(handshake.BadRequest) as info:
        request(target="/nope/x").route()
    assert info.value.status == 404


def test_spdy_negotiation_takes_the_clients_first_supported() -> None:
    r = request(("Upgrade", "SPDY/3.1"), ("X-Stream-Protocol-Version", "v5.channel.k8s.io"),
                ("X-Stream-Protocol-Version", "v3.channel.k8s.io, v4.channel.k8s.io"))
    protocol, answer = handshake.negotiate_spdy(r, rc.SPDY_PROTOCOLS)
    assert protocol == rc.V3
    assert answer.startswith(b"HTTP/1.1 101 ")
    assert b"X-Stream-Protocol-Version: v3.channel.k8s.io\r\n" in answer


def test_spdy_negotiation_400_without_header_and_403_with_none_in_common() -> None:
    with pytest.raises(handshake.BadRequest) as missing:
        handshake.negotiate_spdy(request(("Upgrade", "SPDY/3.1")), rc.SPDY_PROTOCOLS)
    assert missing.value.status == 400
    with pytest.raises(handshake.BadRequest) as none:
        handshake.negotiate_spdy(
            request(("Upgrade", "SPDY/3.1"), ("X-Stream-Protocol-Version", "v9")),
            rc.SPDY_PROTOCOLS)
    assert none.value.status == 403
    answer = none.value.response()
    assert answer.startswith(b"HTTP/1.1 403 ")
    for protocol in rc.SPDY_PROTOCOLS:
        assert f"X-Accepted-Stream-Protocol-Versions: {protocol}\r\n".encode() in answer


def test_websocket_negotiation() -> None:
    key = ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
    version = ("Sec-WebSocket-Version", "13")
    r = request(("Upgrade", "websocket"), key, version,
                ("Sec-WebSocket-Protocol", "v5.channel.k8s.io"))
    protocol, answer = handshake.negotiate_websocket(r, rc.WEBSOCKET_PROTOCOLS)
    assert protocol == rc.V5
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in answer
    assert b"Sec-WebSocket-Protocol: v5.channel.k8s.io\r\n" in answer
    bare, answer = handshake.negotiate_websocket(request(key, version), rc.WEBSOCKET_PROTOCOLS)
    assert bare == "" and b"Sec-WebSocket-Protocol" not in answer
    with pytest.raises(handshake.BadRequest):
        handshake.negotiate_websocket(request(key, version, ("Sec-WebSocket-Protocol", "x")),
                                      rc.WEBSOCKET_PROTOCOLS)


def test_expected_streams() -> None:
    tty = rc.Options(stdin=True, stdout=True, stderr=False, tty=True)
    assert rc.expected_streams(rc.V4, tty) == {rc.Channel.ERROR, rc.Channel.STDIN,
                                                rc.Channel.STDOUT, rc.Channel.RESIZE}
    assert rc.Channel.RESIZE not in rc.expected_streams(rc.V2, tty)
    plain = rc.Options(stdin=False, stdout=True, stderr=True, tty=False)
    assert rc.expected_streams(rc.V4, plain) == {rc.Channel.ERROR, rc.Channel.STDOUT,
                                                  rc.Channel.STDERR}


def test_v4_status_carries_the_exit_code_as_client_go_reads_it() -> None:
    status = json.loads(rc.exit_status(rc.V4, 3))
    assert status["status"] == "Failure" and status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    assert json.loads(rc.exit_status(rc.V4, 0)) == {"metadata": {}, "status": "Success"}
    failure = json.loads(rc.exit_status(rc.V5, None, "no such container"))
    assert (failure["reason"], failure["code"]) == ("InternalError", 500)
    assert rc.exit_status(rc.V3, 0) == b""
    assert b"exit status 2" in rc.exit_status(rc.V2, 2)


def test_resize_stream_split_anywhere() -> None:
    decoder = rc.ResizeDecoder()
    text = b'{"Width":80,"Height":24}\n{"Width":100,"Height":50}\n'
    sizes = [s for i in range(len(text)) for s in decoder.feed(text[i:i + 1])]
    assert sizes == [(80, 24), (100, 50)]


def test_websocket_channels() -> None:
    assert rc.encode_ws(rc.V4, 1, b"out") == (b"\x01out", True)
    assert rc.encode_ws(rc.BASE64_V4, 2, b"err") == (b"2ZXJy", False)
    assert rc.decode_ws(rc.V4, b"\x00in") == rc.ChannelData(0, b"in")
    assert rc.decode_ws(rc.BASE64_V1, b"0aW4=") == rc.ChannelData(0, b"in")
    assert rc.decode_ws(rc.V5, b"\xff\x00") == rc.ChannelClosed(0)
    assert rc.decode_ws(rc.V4, b"\xff\x00") == rc.ChannelData(255, b"\x00")  # v4 has no CLOSE
    assert rc.decode_ws(rc.V4, b"") is None


def test_stream_validation() -> None:
    with pytest.raises(InvalidArgument):
        validate_streams(tty=True, stdin=True, stdout=True, stderr=True)
    with pytest.raises(InvalidArgument):
        validate_streams(tty=False, stdin=False, stdout=False, stderr=False)
    validate_streams(tty=True, stdin=True, stdout=True, stderr=False)


def test_tokens_are_single_use_expire_and_are_bounded() -> None:
    request = ExecRequest("c", ("true",), False, False, True, False)
    cache = TokenCache(ttl=60, max_in_flight=2)
    token = cache.insert(request)
    assert len(token) == 8
    assert cache.consume(token) == request
    assert cache.consume(token) is None
    cache.insert(request)
    cache.insert(request)
    with pytest.raises(Unavailable):
        cache.insert(request)
    expired = TokenCache(ttl=0)
    assert expired.consume(expired.insert(request)) is None
