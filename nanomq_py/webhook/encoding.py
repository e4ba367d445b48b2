"""Encodings of the `payload` field of message bodies (`body.encoding`).

- plain: the payload as text. Bytes that are valid UTF-8 come through exactly
  (a NUL byte included: JSON writes it as \\u0000, where NanoMQ cut the text
  there). Bytes that are not valid UTF-8 are each replaced by U+FFFD, following
  the Unicode "maximal subpart" rule of Python's ``errors="replace"``, so the
  body is always valid JSON; choose base64 or base62 to get the exact bytes.
- base64: RFC 4648, standard alphabet, with ``=`` padding.
- base62: NanoMQ's true base62: the payload read as one big-endian unsigned
  integer written with the alphabet 0-9A-Za-z, plus one leading ``0`` per
  leading zero byte.

An empty payload is ``""`` in every encoding.

Cost: plain and base64 are linear. base62 is a radix conversion of a big
integer, quadratic in the payload size with CPython's division (about 3 ms for
4 KiB on a desktop core, 30 ms for 16 KiB, and it runs on the broker's only
core), so payloads above BASE62_MAX_PAYLOAD bytes are refused with
PayloadTooLarge; the sender counts such an event as failed and says why.
"""

from __future__ import annotations

import base64
from functools import lru_cache

ENCODINGS = ("plain", "base64", "base62")
BASE62_MAX_PAYLOAD = 4096
_BASE62_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BITS_PER_BASE62_DIGIT = 5.954196310386876  # log2(62)
_DIRECT_DIGITS = 24  # below this many digits, plain repeated division is fastest


class PayloadTooLarge(ValueError):
    """The payload is too large for the configured encoding."""


def encode_plain(payload: bytes) -> str:
    return str(payload, "utf-8", "replace")


def encode_base64(payload: bytes) -> str:
    return base64.b64encode(payload).decode("ascii")


def encode_base62(payload: bytes) -> str:
    if len(payload) > BASE62_MAX_PAYLOAD:
        raise PayloadTooLarge(
            f"a {len(payload)}-byte payload exceeds the base62 limit of {BASE62_MAX_PAYLOAD} bytes"
        )
    significant = bytes(payload).lstrip(b"\0")
    leading_zeros = "0" * (len(payload) - len(significant))
    if not significant:
        return leading_zeros
    return leading_zeros + _base62_digits(int.from_bytes(significant, "big"), 0)


def _base62_digits(number: int, width: int) -> str:
    """`number` in base 62, left-padded with '0' to `width` digits.

    Splits the number in two halves by a power of 62 and converts each half on
    its own, so the big divisions happen log(n) times instead of once per digit.
    """
    digits = int(number.bit_length() / _BITS_PER_BASE62_DIGIT) + 1
    if digits <= _DIRECT_DIGITS:
        out = []
        while number:
            number, digit = divmod(number, 62)
            out.append(_BASE62_ALPHABET[digit])
        return "".join(reversed(out)).rjust(width, "0")
    low_width = digits // 2
    high, low = divmod(number, _power_of_62(low_width))
    return _base62_digits(high, width - low_width) + _base62_digits(low, low_width)


@lru_cache(maxsize=64)
def _power_of_62(exponent: int) -> int:
    return 62**exponent


def payload_encoder(name: str):
    """The function (bytes -> str) for an encoding name, case-insensitive."""
    encoders = {"plain": encode_plain, "base64": encode_base64, "base62": encode_base62}
    try:
        return encoders[name.lower()]
    except KeyError:
        raise ValueError(f"unknown webhook body.encoding {name!r}; allowed: {', '.join(ENCODINGS)}") from None
