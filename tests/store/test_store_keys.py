from __future__ import annotations

import pytest

from scanning.errors import ConfigError
from scanning.store.keys import decode_key, encode_key, join_key, split_key, validate_prefix

FORBIDDEN = set("/\\#?") | {chr(code) for code in (*range(0x20), *range(0x7F, 0xA0))}

ODD_NAMES = [
    "library/nginx",
    "team/sub/deeper/app",
    "localhost:5000",
    "sha256:" + "0" * 64,
    "a\\b#c?d%e~f|g'h\"i j",
    "\u00e9\u00e8/\u6f22\u5b57/\U0001f600",
    "tab\tnewline\ncontrol\x7f\x9f",
    "~7E",
    "",
]


@pytest.mark.parametrize("text", ODD_NAMES)
def test_encode_key_round_trips(text: str) -> None:
    assert decode_key(encode_key(text)) == text


@pytest.mark.parametrize("text", ODD_NAMES)
def test_encoded_key_has_no_forbidden_character(text: str) -> None:
    assert not FORBIDDEN & set(encode_key(text))


def test_encode_key_escapes_slash_and_tilde() -> None:
    assert encode_key("team/app~1") == "team~2Fapp~7E1"


def test_encode_key_keeps_registry_and_digest_readable() -> None:
    assert encode_key("myacr.azurecr.io:443") == "myacr.azurecr.io:443"


def test_join_key_splits_back_into_components() -> None:
    assert split_key(join_key("reg.io", "a|b/c", "sha256:ff")) == ("reg.io", "a|b/c", "sha256:ff")


def test_decode_key_rejects_bad_escape() -> None:
    with pytest.raises(ValueError, match="bad escape"):
        decode_key("abc~zz")


def test_join_key_rejects_keys_over_one_kib() -> None:
    with pytest.raises(ValueError, match="longer than 1024"):
        join_key("x" * 1025)


def test_validate_prefix_rejects_uppercase() -> None:
    with pytest.raises(ConfigError, match="lower-case"):
        validate_prefix("Acr")
