"""Payload encodings of the webhook bodies: the reference's vectors and the rules for odd payloads."""

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nanomq_py.webhook.encoding import (
    BASE62_MAX_PAYLOAD,
    PayloadTooLarge,
    encode_base62,
    encode_base64,
    encode_plain,
    payload_encoder,
)

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def decode_base62(text: str) -> bytes:
    """The inverse of NanoMQ's base62, written the obvious way."""
    zeros = len(text) - len(text.lstrip("0"))
    number = 0
    for char in text[zeros:]:
        number = number * 62 + ALPHABET.index(char)
    significant = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\0" * zeros + significant


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"messagei+/", "2a7oZkl5ty6sG7"),
        (b"Hello World!", "T8dgcjRGkZ3aysdN"),
        (b"\x00\x00\x01", "001"),
        (b"\x00", "0"),
        (b"\x00\x00", "00"),
        (b"\x01", "1"),
        (b"=", "z"),  # 61
        (b">", "10"),  # 62
        (b"", ""),
    ],
)
def test_base62_reference_vectors(payload, expected):
    assert encode_base62(payload) == expected


@given(st.binary(max_size=600))
def test_base62_round_trips(payload):
    encoded = encode_base62(payload)
    assert set(encoded) <= set(ALPHABET)
    assert decode_base62(encoded) == payload


def test_base62_of_a_large_payload_round_trips():
    payload = bytes(range(256)) * (BASE62_MAX_PAYLOAD // 256)
    assert decode_base62(encode_base62(payload)) == payload


def test_base62_refuses_payloads_over_its_limit():
    with pytest.raises(PayloadTooLarge, match="base62 limit"):
        encode_base62(b"x" * (BASE62_MAX_PAYLOAD + 1))


@pytest.mark.parametrize(
    ("payload", "expected"),
    [(b"messagei+/", "bWVzc2FnZWkrLw=="), (b"Hello World!", "SGVsbG8gV29ybGQh"), (b"", "")],
)
def test_base64_reference_vectors(payload, expected):
    assert encode_base64(payload) == expected


def test_plain_keeps_utf8_text_and_nul_bytes():
    assert encode_plain(b"Hello World!") == "Hello World!"
    assert encode_plain("température 21°C".encode()) == "température 21°C"
    assert encode_plain(b"a\x00b") == "a\x00b"
    assert encode_plain(b"") == ""


def test_plain_replaces_each_invalid_byte_with_the_replacement_character():
    assert encode_plain(b"ok\xff\xfe!") == "ok\ufffd\ufffd!"
    assert encode_plain(b"\xe2\x82") == "\ufffd"  # a truncated sequence is one maximal subpart


@given(st.binary(max_size=200))
def test_every_encoding_gives_a_json_string_for_any_bytes(payload):
    for name in ("plain", "base64", "base62"):
        text = payload_encoder(name)(payload)
        assert json.loads(json.dumps(text, ensure_ascii=False)) == text
    assert base64.b64decode(encode_base64(payload)) == payload


def test_encoding_names_are_case_insensitive_and_checked():
    assert payload_encoder("BASE64") is encode_base64
    with pytest.raises(ValueError, match="allowed: plain, base64, base62"):
        payload_encoder("hex")
