"""What RFC 6455 requires of each frame a client sends, checked along one connection.

The names are the golden traces' `rfc_issues` (traces/FORMAT.md), so a recording of the model or
a board reads like a recording of the real library.
"""
from __future__ import annotations

from wire.frames import DATA_OPCODES, OP_CLOSE, OP_CONTINUATION, RESERVED_OPCODES, Frame

CONTROL_PAYLOAD_MAX = 125          # §5.5


class ClientFrameChecker:
    """Feed the frames of one connection in order; `issues(frame)` names every rule it breaks."""

    def __init__(self) -> None:
        self._in_message = False     # a fragmented data message is open (§5.4)
        self._closed = False         # the client sent its close frame (§5.5.1)

    def issues(self, frame: Frame) -> list[str]:
        found = []
        if not frame.masked:
            found.append("unmasked_client_frame")                       # §5.1
        if frame.rsv:
            found.append("rsv_nonzero")                                 # §5.2
        if frame.opcode in RESERVED_OPCODES:
            found.append("reserved_opcode")                             # §5.2
        if frame.is_control:
            if len(frame.payload) > CONTROL_PAYLOAD_MAX:
                found.append("control_payload_over_125")                # §5.5
            if not frame.fin:
                found.append("fragmented_control_frame")                # §5.5
        if frame.opcode == OP_CLOSE and len(frame.payload) == 1:
            found.append("close_payload_1_byte")                        # §5.5.1
        if not frame.minimal_length:
            found.append("non_minimal_length")                          # §5.2
        if frame.opcode == OP_CONTINUATION and not self._in_message:
            found.append("continuation_without_start")                  # §5.4
        if frame.opcode in DATA_OPCODES and frame.opcode != OP_CONTINUATION and self._in_message:
            found.append("new_message_inside_fragmented")               # §5.4
        if self._closed:
            found.append("second_client_close" if frame.opcode == OP_CLOSE
                         else "frame_after_client_close")               # §5.5.1
        if frame.opcode == OP_CONTINUATION:
            self._in_message = self._in_message and not frame.fin
        elif frame.opcode in DATA_OPCODES:
            self._in_message = not frame.fin
        if frame.opcode == OP_CLOSE:
            self._closed = True
        return found
