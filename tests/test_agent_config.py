"""The agent's config: defaults, the documented example, one-line errors, environment overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from fitagent.agent.config import Config, ConfigError, load_config

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "config" / "fitagent.yaml"


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "fitagent.yaml"
    path.write_text(text)
    return path


def test_documented_example_is_valid_and_lists_every_key():
    config = load_config(EXAMPLE, environ={})
    assert config.host == "127.0.0.1" and config.port == 8765 and config.rescan_interval_s == 30.0
    text = EXAMPLE.read_text()
    for key in (
        "host",
        "port",
        "threads",
        "rescan_interval_s",
        "token",
        "token_file",
        "contexts",
        "use_cases",
        "default_context",
        "default_use_case",
        "top",
        "events_max",
        "recompute_min_change_bytes",
        "hardware",
        "watch_models",
        "log_level",
    ):
        assert f"\n{key}:" in text or f"\n# {key}:" in text, key


def test_no_file_means_defaults():
    assert load_config(None, environ={"XDG_CONFIG_HOME": "/nonexistent"}) == Config()


def test_unknown_key_names_key_and_file(tmp_path):
    path = write(tmp_path, "port: 9000\nrescan_intervall_s: 10\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    assert str(err.value).startswith(f"{path}: 'rescan_intervall_s' is not a known key")


@pytest.mark.parametrize(
    "text, message",
    [
        ("port: eighty\n", "port must be a whole number, got 'eighty'"),
        ("port: 70000\n", "port must be between 0 and 65535, got 70000"),
        ("rescan_interval_s: 0.1\n", "rescan_interval_s must be at least 1.0, got 0.1"),
        ("contexts: 8192\n", "contexts must be a list, got 8192"),
        ("contexts: [8192, big]\n", "contexts[1] must be a whole number, got 'big'"),
        (
            "use_cases: [general, poetry]\n",
            "use_cases[1] must be one of general, code, tool-calling, math, vision, got 'poetry'",
        ),
        ("watch_models: [{model: x, ctx: 3}]\n", "watch_models[0].ctx is not a known key"),
        ("token: a\ntoken_file: /b\n", "give token or token_file, not both"),
        ("port: [\n", "not valid YAML"),
    ],
)
def test_bad_values(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    assert str(err.value).startswith(str(path)) and message in str(err.value)


def test_environment_overrides_file(tmp_path):
    path = write(tmp_path, "port: 9000\ncontexts: [4096]\n")
    config = load_config(
        path,
        environ={
            "FITAGENT_PORT": "9100",
            "FITAGENT_CONTEXTS": "2048, 16384",
            "FITAGENT_RESCAN_INTERVAL_S": "5",
            "FITAGENT_TOKEN": "s3cret",
        },
    )
    assert (config.port, config.contexts, config.rescan_interval_s, config.token) == (
        9100,
        (2048, 16384),
        5.0,
        "s3cret",
    )


def test_bad_environment_names_the_variable():
    with pytest.raises(ConfigError) as err:
        load_config(None, environ={"XDG_CONFIG_HOME": "/nonexistent", "FITAGENT_PORT": "x"})
    assert str(err.value) == "FITAGENT_PORT: port must be a whole number, got 'x'"
    # other parts' variables are not config keys and are left alone
    assert (
        load_config(
            None, environ={"XDG_CONFIG_HOME": "/nonexistent", "FITAGENT_URL": "http://x", "FITAGENT_DEBUG": "1"}
        )
        == Config()
    )


def test_token_file_is_read_and_must_exist(tmp_path):
    token = tmp_path / "token"
    token.write_text("abc123\n")
    path = write(tmp_path, f"token_file: {token}\n")
    assert load_config(path, environ={}).read_token() == "abc123"
    missing = write(tmp_path, f"token_file: {tmp_path / 'nope'}\n")
    with pytest.raises(ConfigError, match="token_file .*nope: no such file"):
        load_config(missing, environ={})


def test_serve_with_bad_config_exits_2_with_one_line(tmp_path, cli):
    path = write(tmp_path, "port: 9000\nthreds: 4\n")
    result = cli("serve", "--config", str(path))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"fitagent serve: {path}: 'threds' is not a known key "
        f"(known: {', '.join(k for k in Config.__dataclass_fields__ if k != 'source')})"
    ]
