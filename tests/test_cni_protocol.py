"""The plugin <-> daemon wire protocol: shapes, framing, limits and the server helper."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from terwayctl.cni import protocol
from terwayctl.cni.protocol import ErrorInfo, ProtocolError, Reply, Request


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with left, right:
        yield left, right


def full_request() -> Request:
    return Request(
        verb="CHECK",
        cni_version="1.1.0",
        network_name="terway",
        container_id="abc",
        netns="/var/run/netns/cni-1",
        ifname="eth0",
        pod_namespace="default",
        pod_name="nginx",
        infra_container_id="abc",
        pod_uid="uid-1",
        cni_args={"K8S_POD_NAME": "nginx"},
        runtime_config={"bandwidth": {"ingressRate": 1000}},
        netconf={"type": "terway"},
        prev_result={"ips": [{"address": "10.0.0.10/24"}]},
        valid_attachments=None,
    )


def test_request_wire_shape_is_stable() -> None:
    assert full_request().to_wire() == {
        "protocol": 1,
        "verb": "CHECK",
        "cni_version": "1.1.0",
        "network_name": "terway",
        "container_id": "abc",
        "netns": "/var/run/netns/cni-1",
        "ifname": "eth0",
        "pod_namespace": "default",
        "pod_name": "nginx",
        "infra_container_id": "abc",
        "pod_uid": "uid-1",
        "cni_args": {"K8S_POD_NAME": "nginx"},
        "runtime_config": {"bandwidth": {"ingressRate": 1000}},
        "netconf": {"type": "terway"},
        "prev_result": {"ips": [{"address": "10.0.0.10/24"}]},
        "valid_attachments": None,
    }


def test_request_round_trip() -> None:
    frame = protocol.encode_request(full_request())
    assert frame.endswith(b"\n") and frame.count(b"\n") == 1
    assert protocol.decode_request(frame) == full_request()
    gc = Request(verb="GC", cni_version="1.1.0", valid_attachments=[{"container_id": "a", "ifname": "eth0"}])
    assert protocol.decode_request(protocol.encode_request(gc)) == gc


@pytest.mark.parametrize(
    "reply",
    [Reply.success({"ips": [{"address": "10.0.0.10/24"}]}), Reply.success(), Reply.failure(11, "pool empty", "Throttling")],
    ids=["result", "no-result", "error"],
)
def test_reply_round_trip(reply: Reply) -> None:
    assert protocol.decode_reply(protocol.encode_reply(reply)) == reply


def test_reply_wire_shapes() -> None:
    assert Reply.success().to_wire() == {"protocol": 1, "ok": True, "result": None}
    assert Reply.failure(3, "unknown container").to_wire() == {
        "protocol": 1, "ok": False, "error": {"code": 3, "msg": "unknown container", "details": ""},
    }
    assert Reply.failure(3, "x").error == ErrorInfo(3, "x")
    with pytest.raises(ValueError):
        Reply(True, error=ErrorInfo(1, "x"))


def test_newlines_inside_strings_do_not_break_framing() -> None:
    reply = Reply.failure(11, "line one\nline two", "a\r\nb")
    frame = protocol.encode_reply(reply)
    assert frame.count(b"\n") == 1
    assert protocol.decode_reply(frame) == reply


@pytest.mark.parametrize(
    ("message", "fragment"),
    [
        ({"verb": "ADD", "cni_version": "1.1.0"}, "protocol version"),
        ({"protocol": 2, "verb": "ADD", "cni_version": "1.1.0"}, "protocol version"),
        ({"protocol": 1, "verb": "UPDATE", "cni_version": "1.1.0"}, "unknown verb"),
        ({"protocol": 1, "verb": "ADD", "cni_version": 1}, "cni_version"),
        ({"protocol": 1, "verb": "ADD", "cni_version": "1.1.0", "runtime_config": []}, "runtime_config"),
        ({"protocol": 1, "verb": "ADD", "cni_version": "1.1.0", "cni_args": {"a": 1}}, "cni_args"),
        ({"protocol": 1, "verb": "GC", "cni_version": "1.1.0", "valid_attachments": [{"container_id": "a"}]}, "valid_attachments"),
    ],
)
def test_bad_requests(message: dict[str, object], fragment: str) -> None:
    with pytest.raises(ProtocolError, match=fragment):
        Request.from_wire(message)


@pytest.mark.parametrize(
    "message",
    [
        {"protocol": 1},
        {"protocol": 1, "ok": "yes"},
        {"protocol": 1, "ok": False},
        {"protocol": 1, "ok": False, "error": {"code": "11", "msg": "x"}},
        {"protocol": 1, "ok": False, "error": {"code": 0, "msg": "x"}},
        {"protocol": 1, "ok": False, "error": {"code": 11}},
        {"protocol": 1, "ok": True, "result": [1]},
    ],
    ids=json.dumps,
)
def test_bad_replies(message: dict[str, object]) -> None:
    with pytest.raises(ProtocolError):
        Reply.from_wire(message)


@pytest.mark.parametrize("frame", [b"[]\n", b"nope\n", b"[" * 50_000 + b"\n"], ids=["array", "text", "deep"])
def test_decode_refuses_non_objects(frame: bytes) -> None:
    with pytest.raises(ProtocolError):
        protocol.decode(frame)


def test_encode_refuses_oversized_messages() -> None:
    with pytest.raises(ProtocolError, match="exceeds"):
        protocol.encode({"blob": "x" * protocol.MAX_MESSAGE_BYTES})


def test_recv_frame_reads_a_message_sent_in_pieces(pair: tuple[socket.socket, socket.socket]) -> None:
    left, right = pair
    left.sendall(b'{"a":')
    left.sendall(b"1}\n")
    assert protocol.recv_frame(right, time.monotonic() + 2) == b'{"a":1}\n'


@pytest.mark.parametrize(
    ("data", "fragment"),
    [(b"", "without a message"), (b'{"a":1}', "middle"), (b'{"a":1}\n{"b":2}\n', "more than one")],
)
def test_recv_frame_framing_errors(pair: tuple[socket.socket, socket.socket], data: bytes, fragment: str) -> None:
    left, right = pair
    left.sendall(data)
    left.shutdown(socket.SHUT_WR)
    with pytest.raises(ProtocolError, match=fragment):
        protocol.recv_frame(right, time.monotonic() + 2)


def test_recv_frame_stops_at_the_size_limit(pair: tuple[socket.socket, socket.socket]) -> None:
    left, right = pair
    chunk = b"x" * 65536
    sender = threading.Thread(target=lambda: _send_until_closed(left, chunk))
    sender.start()
    try:
        with pytest.raises(ProtocolError, match="exceeds"):
            protocol.recv_frame(right, time.monotonic() + 5)
    finally:
        right.shutdown(socket.SHUT_RDWR)
        sender.join(timeout=5)


def _send_until_closed(sock: socket.socket, chunk: bytes) -> None:
    try:
        for _ in range(protocol.MAX_MESSAGE_BYTES // len(chunk) + 8):
            sock.sendall(chunk)
    except OSError:
        pass


def test_recv_frame_honours_the_deadline(pair: tuple[socket.socket, socket.socket]) -> None:
    _, right = pair
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        protocol.recv_frame(right, time.monotonic() + 0.2)
    assert time.monotonic() - started < 2


def test_serve_connection_answers_bad_requests_with_code_6(pair: tuple[socket.socket, socket.socket]) -> None:
    left, right = pair
    left.sendall(b'{"protocol": 1, "verb": "FLY"}\n')
    protocol.serve_connection(right, lambda request: Reply.success(), timeout=2)
    reply = protocol.decode_reply(protocol.recv_frame(left, time.monotonic() + 2))
    assert reply.error is not None and reply.error.code == 6 and "FLY" in reply.error.details


def test_call_against_a_listening_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "d.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        server.listen(1)

        def answer() -> None:
            conn, _ = server.accept()
            with conn:
                protocol.serve_connection(conn, lambda request: Reply.success({"echo": request.verb}), timeout=2)

        thread = threading.Thread(target=answer)
        thread.start()
        reply = protocol.call(Request(verb="STATUS", cni_version="1.1.0"), path, timeout=2)
        thread.join(timeout=5)
    assert reply == Reply.success({"echo": "STATUS"})


def test_call_names_the_socket_when_nobody_listens(tmp_path: Path) -> None:
    path = str(tmp_path / "missing.sock")
    with pytest.raises(protocol.DaemonUnreachable) as caught:
        protocol.call(Request(verb="ADD", cni_version="1.1.0"), path, timeout=1)
    assert caught.value.socket_path == path
