"""Errors of the host <-> device link, all :class:`hearmask.errors.HearmaskError`.

Each message says what was waited for or what was wrong, with the value, and what is
accepted, so a user at a serial console can act on it.
"""

from __future__ import annotations

from hearmask.errors import HearmaskError


class BridgeError(HearmaskError):
    """Base class of every error raised by ``hearmask.firmware_bridge``."""


class MalformedPayload(BridgeError):
    """A frame arrived intact (CRC good) but its payload does not follow PROTOCOL.md."""


class DeviceTimeout(BridgeError):
    """The device did not send what was waited for in time (after the bounded retries)."""


class DeviceErrorReply(BridgeError):
    """The device answered a request with an ERROR message.

    Attributes:
        code: the ``ErrorCode`` the device sent.
        device_message: the device's own text.
    """

    def __init__(self, message: str, code: int, device_message: str):
        super().__init__(message)
        self.code = code
        self.device_message = device_message


class ProtocolError(BridgeError):
    """The device broke the protocol: an oversized frame, a malformed payload or a wrong reply type."""


class ModelHashMismatch(BridgeError):
    """The model the device reports (INFO's SHA-256) is not the one the host expects."""


class DeviceReset(BridgeError):
    """The device restarted during a request whose device-side state cannot be replayed (STREAM)."""


class TensorMismatch(BridgeError):
    """Tensors given for a model do not match its inputs (names, count, shapes or dtypes)."""


class ValueOutOfRange(MalformedPayload):
    """A well-formed field whose value is outside the accepted range (audiogram, strengths, run counts)."""


class TransportClosed(BridgeError):
    """The serial line went away (the other end closed the port or the pty hung up)."""
