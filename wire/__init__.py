"""RFC 6455 wire format, shared by the test server's recorder and the reference device model.

Both need raw control that WebSocket libraries hide on purpose: the recorder must see every frame
as sent (FIN, RSV bits, mask bit, unjoined fragments, frames after a close), and the model must send
what the firmware sends (reserved opcodes, oversized control frames, its own header order).
"""
