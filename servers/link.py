"""Serving one upgrade request as an endpoint's behaviour says: refuse, stall, or accept and then
echo messages, answer pings, and take part in the closing handshake.

aiohttp does HTTP, the handshake and frame parsing for the message loop; everything the server
sends after the 101 is encoded here with wire.frames and written straight to the transport, so
the bytes are exactly as scripted and nothing is refused for the link's state (a conformance
harness must be able to send what a strict server would not).
"""
from __future__ import annotations

import asyncio
import time

from aiohttp import WSMsgType, web

from wire.frames import OP_BINARY, OP_CLOSE, OP_PONG, OP_TEXT, close_payload, encode_frame

from .connection import Connection
from .endpoint import Endpoint


def refusal(status: int, body: bytes = b"") -> web.Response:
    response = web.Response(status=status, body=body)
    response.force_close()  # one request per TCP connection: the recorder expects that
    return response


async def serve_upgrade(request: web.BaseRequest, conn: Connection, ep: Endpoint) -> web.StreamResponse:
    behaviour = ep.behaviour
    if behaviour.handshake == "refuse":
        conn.refused_status = behaviour.refuse_status
        return refusal(behaviour.refuse_status, behaviour.refuse_body)
    if behaviour.handshake == "stall":
        conn.feed_aiohttp = False  # whatever follows is the recorder's alone
        await conn.wait_tcp_closed()
        return refusal(408)  # never written: the connection is gone

    if behaviour.handshake_delay_s:
        closed = asyncio.ensure_future(conn.wait_tcp_closed())
        try:
            await asyncio.wait_for(asyncio.shield(closed), behaviour.handshake_delay_s)
            return refusal(408)  # the device gave up first: never written, TCP is gone
        except asyncio.TimeoutError:
            closed.cancel()
    protocols: tuple[str, ...] = ()
    if behaviour.subprotocol is not None:
        offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
        if behaviour.subprotocol not in offered:
            conn.refused_status = 400
            return refusal(400, f"subprotocol {behaviour.subprotocol!r} required".encode())
        protocols = (behaviour.subprotocol,)

    ws = web.WebSocketResponse(protocols=protocols, autoping=False, autoclose=False,
                               compress=False, decode_text=False, max_msg_size=0)
    if not ws.can_prepare(request).ok:
        conn.refused_status = 400
        return refusal(400, b"not a valid WebSocket upgrade")
    link = request.transport
    link.cork()  # type: ignore[union-attr]  # LinkTransport: the 101 and greeting in one write
    try:
        await ws.prepare(request)
        conn.upgraded = True  # before the 101 leaves: whoever sees the 101 must see the flag
    finally:
        link.uncork(b"".join(behaviour.greeting))  # type: ignore[union-attr]
    conn.notify()

    if not behaviour.interpret:
        conn.feed_aiohttp = False  # record only: every frame as it comes, nothing refused
        await conn.wait_tcp_closed()
        return ws
    await _message_loop(ws, conn, ep)
    conn.feed_aiohttp = False  # frames after the close are the recorder's alone
    await conn.wait_tcp_closed()
    return ws


async def _message_loop(ws: web.WebSocketResponse, conn: Connection, ep: Endpoint) -> None:
    loop = asyncio.get_running_loop()
    while True:
        msg = await ws.receive()
        if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
            if ep.echo and conn.close_sent_at is None:
                opcode = OP_TEXT if msg.type is WSMsgType.TEXT else OP_BINARY
                _write(conn, encode_frame(opcode, msg.data))
        elif msg.type is WSMsgType.PING:
            delay = ep.behaviour.pong_delay_s
            if delay is not None and conn.close_sent_at is None:
                loop.call_later(delay, _pong, conn, msg.data)
        elif msg.type is WSMsgType.CLOSE:
            _device_closed(conn, ep)
            return
        elif msg.type is WSMsgType.PONG:
            continue
        else:
            # ERROR: aiohttp's reader refused a frame and has sent a close (1002 and the like)
            # and dropped TCP, as a strict server does. CLOSED/CLOSING: TCP is gone.
            if msg.type is WSMsgType.ERROR:
                conn.rejection = str(msg.data)
            return


def _device_closed(conn: Connection, ep: Endpoint) -> None:
    if conn.close_sent_at is not None:
        return  # the device answered our close; close() arranged what happens to TCP
    behaviour = ep.behaviour
    if behaviour.reply_to_device_close:
        code = next((rf.frame.close_code() for rf in reversed(conn.frames)
                     if rf.frame.opcode == OP_CLOSE), None)
        _write(conn, encode_frame(OP_CLOSE, close_payload(code)))
        conn.sent_close()
    if behaviour.drop_after_device_close_s is not None:
        asyncio.get_running_loop().call_later(behaviour.drop_after_device_close_s, conn.close_tcp)


def _pong(conn: Connection, payload: bytes) -> None:
    pong = (time.monotonic(), payload)
    conn.pongs_sent.append(pong)  # before the write: a test may read it as soon as the pong lands
    if not _write(conn, encode_frame(OP_PONG, payload)):
        conn.pongs_sent.remove(pong)
    conn.notify()


def _write(conn: Connection, data: bytes) -> bool:
    """Write unless TCP is already closing: a reply racing the device's disconnect is not an error."""
    try:
        conn.write(data)
    except ConnectionError:
        return False
    return True
