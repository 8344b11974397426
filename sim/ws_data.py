"""+WS_DATA as AT+WSDATAFMT shapes it (VERSIONS.md current): a link id's format (level and mask)
and the URC's bytes. The field order and the mask bits are the spec data's
(`spec.load().wsdatafmt_fields`, `.wsdatafmt_crlf_bit`, `.wsdatafmt_levels`); before any
AT+WSDATAFMT, and on every profile without it, a link has the defaults (level 0, mask 48), which
print the released form `+WS_DATA:<link_id>,<data_len>,<data>\\r\\n`.
"""
from __future__ import annotations

from dataclasses import dataclass

import spec
from sim.behaviour import CONFORMING, Behaviour

_SPEC = spec.load()
FIELDS = _SPEC.wsdatafmt_fields            # opcode, fin, payload_len, payload_offset, data_len
CRLF_BIT = _SPEC.wsdatafmt_crlf_bit
CHUNK, FRAME, MESSAGE = (_SPEC.wsdatafmt_levels.index(name) for name in ("chunk", "frame", "message"))


@dataclass(frozen=True)
class DataFormat:
    level: int     # CHUNK: one URC per read; FRAME: one per frame; MESSAGE: one per message
    mask: int

    def has(self, field: str) -> bool:
        return bool(self.mask >> FIELDS.index(field) & 1)

    @property
    def crlf(self) -> bool:
        return bool(self.mask >> CRLF_BIT & 1)


def ws_data(link_id: int, fmt: DataFormat, data: bytes, *, opcode: int, fin: bool,
            payload_len: int, payload_offset: int, fw: Behaviour = CONFORMING) -> bytes:
    """`+WS_DATA:<link_id>[,<opcode>][,<fin>][,<payload_len>][,<payload_offset>][,<data_len>],
    <data>[\\r\\n]`, each field present when its mask bit is set."""
    values = {"opcode": opcode, "fin": int(fin), "payload_len": payload_len,
              "payload_offset": payload_offset, "data_len": len(data) + fw.ws_data_len_extra}
    head = [str(fw.printed_link_id(link_id))] + [str(values[f]) for f in FIELDS if fmt.has(f)]
    end = b"\r\n" if fmt.crlf or fw.wsdatafmt_crlf_always else b""
    return b"+WS_DATA:" + fw.ws_data_separator.join(head).encode() + b"," + data + end
