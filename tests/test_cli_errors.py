"""Bad input gets one clear line on stderr and exit code 2, never a traceback."""

import json

import pytest


def _one_line_error(result, *fragments):
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def test_unknown_model_suggests(cli):
    out = cli("estimate", "--model", "llama-3.1-8b-instruct-x", "--gpu", "RTX 4090")
    _one_line_error(out, "unknown model 'llama-3.1-8b-instruct-x'", "did you mean")


def test_unknown_gpu(cli):
    _one_line_error(cli("recommend", "--gpu", "RTX 9999"), "unknown GPU 'RTX 9999'")


def test_unknown_quant(cli):
    _one_line_error(
        cli("estimate", "--model", "llama3.1-8b", "--quant", "Q4_K_X", "--gpu", "4090"),
        "unknown quantization 'Q4_K_X'",
        "did you mean",
    )


@pytest.mark.parametrize(
    "value, fragment",
    [
        ("abc", "'abc' is not a number of tokens"),
        ("-5", "must be a positive number of tokens"),
        ("0", "must be a positive number of tokens"),
        ("99999999999", "beyond any model's window"),
    ],
)
def test_bad_context(cli, value, fragment):
    _one_line_error(cli("estimate", "--model", "llama3.1-8b", "--gpu", "4090", "--context", value), fragment)


def test_context_accepts_k_suffix(cli):
    out = cli("estimate", "--model", "llama3.1-8b", "--gpu", "4090", "--context", "32k", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["context"] == 32768


def test_malformed_config_json(cli, tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text("{ not json")
    _one_line_error(cli("estimate", "--config", str(bad), "--gpu", "4090"), "not valid JSON")
    bad.write_text(json.dumps({"architectures": ["T5ForConditionalGeneration"], "d_model": 512}))
    _one_line_error(cli("estimate", "--config", str(bad), "--gpu", "4090"), "field 'num_hidden_layers' is missing")


def test_hardware_file_errors(cli, tmp_path):
    _one_line_error(cli("recommend", "--hardware", str(tmp_path / "nope.json")), "no such file")
    broken = tmp_path / "snap.json"
    broken.write_text(json.dumps({"schema": "fitagent.hardware/1", "taken_at": "x", "host": {"hostname": "h"}}))
    _one_line_error(cli("recommend", "--hardware", str(broken)), "missing field")
    broken.write_text(json.dumps({"schema": "fitagent.hardware/9", "taken_at": "x", "host": {}}))
    _one_line_error(cli("probe", "--hardware", str(broken)), "schema 'fitagent.hardware/9' is not supported")


def test_argparse_errors_are_one_line(cli):
    _one_line_error(cli("estimate", "--gpu", "4090"), "one of the arguments --model --config --gguf is required")
    _one_line_error(cli("recommend", "--use-case", "poetry"), "invalid choice: 'poetry'")
