"""The node's TOML configuration: defaults, and every mistake one message naming the file and key."""

from __future__ import annotations

import pytest

from segkit.errors import UserError
from segkit.pacs.config import RetryConfig, load_config


def _write(tmp_path, text: str):
    (tmp_path / "model").mkdir(exist_ok=True)
    path = tmp_path / "node.toml"
    path.write_text(text)
    return path


BASE = '[node]\nae_title = "SEGKIT"\nport = 11112\nstorage = "store"\n[model]\npath = "model"\n'


def test_defaults_and_relative_paths(tmp_path):
    config = load_config(_write(tmp_path, BASE + '[[peers]]\nae_title = "PACS"\naddress = "10.0.0.5"\n'))
    assert config.storage == (tmp_path / "store").resolve() and config.model.path == str((tmp_path / "model").resolve())
    assert config.quiet_seconds == 10 and config.retry.max_attempts == 5 and config.destination is None
    assert config.peer_allowed("PACS", "10.0.0.5") and not config.peer_allowed("PACS", "10.0.0.6")
    assert not config.peer_allowed("OTHER", "10.0.0.5")


@pytest.mark.parametrize("text, message", [
    (BASE + "[nodes]\n", "unknown section [nodes]"),
    (BASE.replace("port = 11112", "port = 11112\nquiet = 3"), "[node] unknown key(s) ['quiet']"),
    (BASE.replace("port = 11112", 'port = "x"'), "[node] port: expected int"),
    (BASE.replace('"SEGKIT"', '"A_TITLE_FAR_TOO_LONG"'), "[node] ae_title"),
    (BASE.replace('path = "model"', 'path = "missing"'), "[model] path: model not found"),
    (BASE + '[dicomweb]\nurl = "http://pacs.example/dicom-web"\nauth = "basic"\nusername = "u"\npassword_env = "P"\n',
     "credentials are only sent over https"),
    (BASE + "[tls]\ncert = \"nope.crt\"\nkey = \"nope.key\"\n", "[tls] cert: file not found"),
    ("[node\n", "not valid TOML"),
])
def test_mistakes_name_the_file_and_key(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(UserError) as caught:
        load_config(path)
    assert message in str(caught.value) and caught.value.path == str(path)


def test_back_off_doubles_and_is_capped():
    retry = RetryConfig(5, 30.0, 100.0)
    assert [retry.delay(n) for n in (1, 2, 3, 4)] == [30.0, 60.0, 100.0, 100.0]
    # an unreachable destination is retried without limit: the thousandth try still gets the cap, not an overflow
    assert retry.delay(5000) == 100.0
