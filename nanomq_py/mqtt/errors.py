"""Errors raised while decoding MQTT input, each carrying the MQTT 5 reason code.

The broker answers a bad packet with ``exc.reason_code`` (v5 CONNACK/DISCONNECT) or by
closing the connection (v3.x); the class says which kind of violation it was.
"""


class MQTTError(Exception):
    """Base class: ``MQTTError(reason_code, message)``."""

    reason_code = 0x80
    packets = ()  # FrameReader: complete packets decoded before the bad one

    def __init__(self, reason_code: int, message: str = "") -> None:
        super().__init__(message)
        self.reason_code = reason_code
        self.message = message

    def __str__(self) -> str:
        return f"{self.message} (reason 0x{self.reason_code:02X})"


class _FixedReasonError(MQTTError):
    """An error whose reason code is fixed by its class: ``MalformedPacket("what is wrong")``."""

    reason_code = 0x80

    def __init__(self, message: str = "") -> None:
        super().__init__(type(self).reason_code, message)


class MalformedPacket(_FixedReasonError):
    """The bytes cannot be parsed as the packet the header announces."""

    reason_code = 0x81


class ProtocolError(_FixedReasonError):
    """The packet parses but breaks a rule of the specification."""

    reason_code = 0x82


class UnsupportedProtocolVersion(_FixedReasonError):
    """CONNECT names a protocol name/level this codec does not speak (v3 CONNACK 0x01)."""

    reason_code = 0x84


class PacketTooLarge(_FixedReasonError):
    """A fixed header announced a packet larger than the configured maximum."""

    reason_code = 0x95
