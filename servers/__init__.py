"""The WebSocket server the device under test connects to: scripted endpoints and a recorder of
every frame the device sent, as it was on the wire."""
from .connection import Connection
from .endpoint import Endpoint, NoLiveConnection, ServerWaitTimeout
from .recorder import Handshake, RecordedFrame
from .server import WsTestServer

__all__ = ["Connection", "Endpoint", "Handshake", "NoLiveConnection", "RecordedFrame",
           "ServerWaitTimeout", "WsTestServer"]
