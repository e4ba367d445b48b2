"""The `sqlite { }` block: NanoMQ's keys and ours read into SqliteSettings, the
shipped commented block works uncommented, bad values stop the start naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from nanomq_py.config import ConfigError, load_settings
from nanomq_py.settings import SqliteSettings

REPO = Path(__file__).resolve().parent.parent


def _load(tmp_path, text):
    path = tmp_path / "nanomq.conf"
    path.write_text(text)
    return load_settings(str(path), None, {}, None)


def test_nanomq_documented_block(tmp_path):
    settings, warnings = _load(
        tmp_path,
        'sqlite {\n  disk_cache_size = 102400\n  mounted_file_path = "/var/lib/nanomq/"\n'
        "  flush_mem_threshold = 100\n  resend_interval = 5000\n}\n",
    )
    assert warnings == []
    assert settings.sqlite == SqliteSettings(mounted_file_path="/var/lib/nanomq/", resend_interval=5.0)


def test_without_the_block_or_disabled_there_is_no_store(tmp_path):
    assert _load(tmp_path, "")[0].sqlite is None
    settings, warnings = _load(tmp_path, "sqlite { enable = false, synchronous = whatever }\n")
    assert settings.sqlite is None
    assert warnings == []


def test_shipped_commented_block_works_uncommented(tmp_path):
    text = (REPO / "etc" / "nanomq.conf").read_text()
    start = text.index("# sqlite {")
    end = text.index("# }", start) + len("# }")
    block = [line[2:] if line.startswith("# ") else line.lstrip("#") for line in text[start:end].splitlines()]
    settings, warnings = _load(tmp_path, text[:start] + "\n".join(block) + "\n" + text[end:])
    assert warnings == []
    assert settings.sqlite == SqliteSettings()


def test_our_keys(tmp_path):
    settings, _ = _load(
        tmp_path, 'sqlite { synchronous = NORMAL, webhook_spool = false, resend_interval = "2s" }'
    )
    assert (settings.sqlite.synchronous, settings.sqlite.webhook_spool) == ("NORMAL", False)
    assert settings.sqlite.resend_interval == 2.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sqlite { disk_cache_size = 0 }", "sqlite.disk_cache_size = 0 is invalid: expected an integer >= 1"),
        ('sqlite { mounted_file_path = "" }', "sqlite.mounted_file_path"),
        ("sqlite { resend_interval = -5 }", "sqlite.resend_interval = -5 is invalid"),
        (
            "sqlite { synchronous = off }",
            'sqlite.synchronous = "off" is invalid: expected one of full, normal',
        ),
    ],
)
def test_bad_values_name_the_key(tmp_path, text, expected):
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, text)
    assert expected in str(caught.value)
