"""MessagePack encoding of a stream's schema, validated on decode."""

from __future__ import annotations

from typing import Any, Final

import msgspec

from shared.messages import SCHEMA_VERSION, Message
from shared.streams import StreamSpec

PAYLOAD_FIELD: Final = b"m"
"""The one field of a stream entry that holds the encoded message."""

SUPPORTED_VERSIONS: Final = frozenset({SCHEMA_VERSION})


class DecodeError(ValueError):
    """A payload that is not a valid message of its stream's schema."""


class Codec:
    """Encoder and validating decoder for one stream's schema."""

    def __init__(self, spec: StreamSpec) -> None:
        self.spec = spec
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder(spec.schema)

    def encode(self, message: Message) -> bytes:
        return self._encoder.encode(message)

    def decode(self, payload: bytes) -> Message:
        try:
            message = self._decoder.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise DecodeError(f"{self.spec.name}: {exc}") from exc
        if message.v not in SUPPORTED_VERSIONS:
            raise DecodeError(f"{self.spec.name}: unsupported schema version {message.v}")
        return message  # type: ignore[no-any-return]

    def decode_entry(self, fields: dict[bytes, bytes]) -> Message:
        """Decode a raw stream entry's fields."""
        payload = fields.get(PAYLOAD_FIELD)
        if payload is None:
            raise DecodeError(f"{self.spec.name}: entry has no {PAYLOAD_FIELD!r} field")
        return self.decode(payload)
