"""`fitagent models --local`: the models people have, in every store's layout, read header-first."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import HF_CONFIGS
from local_stores import (
    hf_repo,
    llama_8b_tensors,
    ollama_model,
    write_projector,
    write_safetensors,
    write_tiny,
)

LLAMA = "meta-llama/Llama-3.1-8B-Instruct"
QWEN = "Qwen/Qwen2.5-0.5B-Instruct"


def store_env(home: Path) -> dict:
    """The environment of a user whose home is `home` (and no store variables of the developer's)."""
    return {
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "HF_HUB_CACHE": "",
        "HF_HOME": "",
        "OLLAMA_MODELS": "",
        "LLAMA_CACHE": "",
    }


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A home with a model in each store."""
    from hollow_gguf import write_hollow_gguf

    from fitagent.agent.catalog_cache import load_catalog

    catalog = load_catalog()
    home = tmp_path_factory.mktemp("home")
    hub = home / ".cache" / "huggingface" / "hub"
    config = (HF_CONFIGS / "llama-3.1-8b.json").read_bytes()
    hf_repo(
        hub, LLAMA, {"config.json": config}, revision="00000000old"
    )  # an older revision: not the one refs/main names
    hf_repo(
        hub,
        LLAMA,
        {
            "config.json": config,
            "model-00001-of-00002.safetensors": lambda p: write_safetensors(
                p, llama_8b_tensors(range(16), True, False)
            ),
            "model-00002-of-00002.safetensors": lambda p: write_safetensors(
                p, llama_8b_tensors(range(16, 32), False, True)
            ),
            "model.safetensors.index.json": b"{}",
            "tokenizer.json": b"{}",
        },
    )
    hf_repo(hub, "someone/tiny-GGUF", {"tiny-F16.gguf": write_tiny})
    ollama_model(
        home / ".ollama" / "models",
        "qwen2.5:0.5b-instruct-q8_0",
        lambda p: write_hollow_gguf(p, catalog.model(QWEN), catalog.quant("Q8_0"), name="some upload"),
        projector=b"GGUF projector",
    )
    lmstudio = home / ".lmstudio" / "models" / "lmstudio-community" / "tiny-GGUF"
    lmstudio.mkdir(parents=True)
    write_tiny(lmstudio / "tiny-F16.gguf", split_max_tensors=12)
    write_projector(lmstudio / "mmproj-tiny-F16.gguf")
    cache = home / ".cache" / "llama.cpp"
    cache.mkdir(parents=True)
    write_tiny(cache / "bartowski_tiny-GGUF_tiny-F16.gguf")
    return home


def local_models(cli, home: Path, *args: str, snapshot: str = "rtx4090") -> dict:
    from conftest import SNAPSHOTS

    result = cli(
        "models", "--local", "--json", "--hardware", str(SNAPSHOTS / f"{snapshot}.json"), *args, env=store_env(home)
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def mine(body: dict, home: Path) -> dict:
    return {m["name"]: m for m in body["models"] if m["path"].startswith(str(home))}


def test_every_store_is_read(cli, home):
    body = local_models(cli, home)
    found = mine(body, home)
    assert set(found) == {
        LLAMA,
        "someone/tiny-GGUF",
        "qwen2.5:0.5b-instruct-q8_0",
        "lmstudio-community/tiny-GGUF",
        "bartowski_tiny-GGUF_tiny-F16",
    }
    assert [p for p in body["problems"] if p["path"].startswith(str(home))] == []
    assert {r["store"] for r in body["roots"]} >= {"huggingface", "ollama", "lmstudio", "llama.cpp"}

    hf = found[LLAMA]
    snapshot = home / ".cache/huggingface/hub/models--meta-llama--Llama-3.1-8B-Instruct/snapshots/0123abcd"
    shards = [snapshot / f"model-0000{i}-of-00002.safetensors" for i in (1, 2)]
    assert (hf["store"], hf["format"], hf["path"], hf["files"]) == (
        "huggingface",
        "safetensors",
        str(snapshot),
        [str(s) for s in shards],
    )
    assert hf["size_bytes"] == sum(os.path.getsize(s) for s in shards) > 16_000_000_000  # exact: the files on disk
    assert (hf["quant"], hf["architecture"], hf["catalog_id"]) == ("BF16", "LlamaForCausalLM", LLAMA)
    assert list(hf["dtypes"]) == ["BF16"] and hf["dtypes"]["BF16"] == 8_030_261_248 * 2
    assert (hf["fits"], hf["loads"], hf["placement"], hf["gpu_layers"], hf["quality_source"]) == (
        True,
        True,
        "gpu",
        32,
        "benchmarks",
    )
    assert hf["decode_tokens_per_s"] > 30
    assert hf["launch"]["runtime"] == "vllm" and hf["launch"]["command"].startswith(
        f"vllm serve {LLAMA} --gpu-memory-utilization"
    )

    ollama = found["qwen2.5:0.5b-instruct-q8_0"]
    assert (ollama["store"], ollama["format"], ollama["quant"], ollama["architecture"]) == (
        "ollama",
        "gguf",
        "Q8_0",
        "qwen2",
    )
    assert ollama["catalog_id"] == QWEN and ollama["quality_source"] == "benchmarks"  # by Ollama's name and the shape
    assert ollama["path"].startswith(str(home / ".ollama/models/blobs/sha256-")) and ollama[
        "size_bytes"
    ] == os.path.getsize(ollama["path"])
    assert ollama["mmproj"]["path"].startswith(str(home / ".ollama/models/blobs/sha256-"))
    assert ollama["launch"] == {
        "runtime": "ollama",
        "command": "ollama run qwen2.5:0.5b-instruct-q8_0",
        "options": {"num_gpu": 25, "num_ctx": 8192},
        "environment": {},
    }

    lms = found["lmstudio-community/tiny-GGUF"]
    folder = home / ".lmstudio/models/lmstudio-community/tiny-GGUF"
    split = sorted(str(p) for p in folder.glob("tiny-F16-*-of-*.gguf"))
    assert len(split) == 2 and lms["files"] == split and lms["path"] == split[0]
    assert lms["size_bytes"] == sum(os.path.getsize(p) for p in split)
    assert (lms["quant"], lms["architecture"], lms["catalog_id"]) == ("F16", "llama", None)
    assert lms["quality_source"].startswith("estimated from size")
    assert lms["mmproj"]["path"] == str(folder / "mmproj-tiny-F16.gguf")
    assert lms["launch"]["args"] == [
        "-m",
        split[0],
        "-ngl",
        "3",
        "-c",
        "2048",
        "--mmproj",
        str(folder / "mmproj-tiny-F16.gguf"),
    ]
    assert lms["launch"]["command"].startswith("llama-server -m ")
    assert lms["context"] == 2048  # the file's trained window, under the 8,192 asked

    assert found["someone/tiny-GGUF"]["store"] == "huggingface" and found["someone/tiny-GGUF"]["format"] == "gguf"
    assert found["bartowski_tiny-GGUF_tiny-F16"]["store"] == "llama.cpp"


def test_human_output_has_a_table_with_units(cli, home):
    from conftest import SNAPSHOTS

    result = cli("models", "--local", "--hardware", str(SNAPSHOTS / "rtx4090.json"), env=store_env(home))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "store" in out and "catalog" in out and "decode" in out
    assert "16.1 GB" in out and "tokens/s" in out and LLAMA in out
    assert "ollama run qwen2.5:0.5b-instruct-q8_0" in out and "llama-server -m " in out


def test_without_local_is_one_line(cli):
    result = cli("models")
    assert result.returncode == 2 and "--local" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_problems_are_listed_never_raised(cli, tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    write_tiny(folder / "good.gguf")
    write_tiny(folder / "cut.gguf")
    os.truncate(folder / "cut.gguf", 2000)
    (folder / "split").mkdir()
    shards = write_tiny(folder / "split" / "big.gguf", split_max_tensors=8)
    assert len(shards) == 3
    shards[1].unlink()
    os.symlink("..", folder / "split" / "up")  # a loop
    os.symlink("self.gguf", folder / "self.gguf")  # a link to itself
    os.symlink("nothing.gguf", folder / "gone.gguf")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    write_tiny(elsewhere / "outside.gguf")
    os.symlink(elsewhere, folder / "elsewhere")
    (folder / "alone").mkdir()
    write_projector(folder / "alone" / "mmproj-x.gguf")
    write_safetensors(folder / "no-config" / "model.safetensors", [("w", "F16", [4, 4])])
    (folder / "bad").mkdir()
    (folder / "bad" / "config.json").write_text("{}")
    (folder / "bad" / "model.safetensors").write_bytes((2**40).to_bytes(8, "little") + b"{}")
    write_tiny(folder / "locked.gguf")
    os.chmod(folder / "locked.gguf", 0)
    try:
        result = local_models(cli, tmp_path, "--path", str(folder))
    finally:
        os.chmod(folder / "locked.gguf", 0o644)
    assert [m["name"] for m in result["models"]] == (["good", "locked"] if os.geteuid() == 0 else ["good"])
    problems = {Path(p["path"]).relative_to(folder).as_posix(): p["message"] for p in result["problems"]}
    assert "truncated" in problems["cut.gguf"]
    assert problems["split/big-00001-of-00003.gguf"].startswith(
        "split model: big-00002-of-00003.gguf is missing (1 of 3"
    )
    assert problems["split/up"].startswith("symbolic link loop")
    assert problems["self.gguf"].startswith("symbolic link loop")
    assert problems["gone.gguf"].startswith("broken link")
    assert "outside the folders scanned" in problems["elsewhere"]
    assert problems["alone/mmproj-x.gguf"].startswith("a vision projector (mmproj) with no model beside it")
    assert "without a config.json" in problems["no-config"]
    assert "more than the" in problems["bad/model.safetensors"]
    if os.geteuid() != 0:  # root reads whatever the mode says
        assert problems["locked.gguf"] == "permission denied reading locked.gguf"


def test_rescans_read_only_what_changed(tmp_path, catalog):
    from fitagent.agent.localmodels import scan

    folder = tmp_path / "models"
    folder.mkdir()
    for name in ("a", "b", "c"):
        write_tiny(folder / f"{name}.gguf")
    cache = tmp_path / "scan.json"
    cold = scan(catalog, store_env(tmp_path), paths=[str(folder)], cache_path=str(cache))
    assert (len(cold.models), cold.headers_read, cold.from_cache) == (3, 3, 0)
    assert oct(cache.stat().st_mode & 0o777) == "0o600"
    warm = scan(catalog, store_env(tmp_path), paths=[str(folder)], cache_path=str(cache))
    assert (len(warm.models), warm.headers_read, warm.from_cache) == (3, 0, 3)
    assert [m.model for m in warm.models] == [m.model for m in cold.models]
    stat = (folder / "b.gguf").stat()
    os.utime(folder / "b.gguf", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    touched = scan(catalog, store_env(tmp_path), paths=[str(folder)], cache_path=str(cache))
    assert (touched.headers_read, touched.from_cache) == (1, 2)
    (folder / "c.gguf").unlink()
    assert len(scan(catalog, store_env(tmp_path), paths=[str(folder)], cache_path=str(cache)).models) == 2


def test_where_the_stores_are():
    from fitagent.agent.localmodels.roots import scan_roots

    def places(env):
        return {(r.store, r.path) for r in scan_roots(env)}

    home = {"HOME": "/h"}
    assert places(home) >= {
        ("huggingface", "/h/.cache/huggingface/hub"),
        ("ollama", "/h/.ollama/models"),
        ("ollama", "/usr/share/ollama/.ollama/models"),
        ("lmstudio", "/h/.lmstudio/models"),
        ("lmstudio", "/h/.cache/lm-studio/models"),
        ("llama.cpp", "/h/.cache/llama.cpp"),
    }
    assert ("huggingface", "/x/hub") in places({**home, "HF_HOME": "/x"})
    assert ("huggingface", "/y") in places({**home, "HF_HOME": "/x", "HF_HUB_CACHE": "/y"})
    assert ("huggingface", "/c/huggingface/hub") in places({**home, "XDG_CACHE_HOME": "/c"})
    assert ("ollama", "/o") in places({**home, "OLLAMA_MODELS": "/o"})
    assert ("llama.cpp", "/l") in places({**home, "LLAMA_CACHE": "/l"})
    assert {r.path for r in scan_roots(home, paths=["/p"])} == {"/p"}


def test_config_model_dirs_are_scanned(cli, tmp_path):
    folder = tmp_path / "srv" / "models"
    folder.mkdir(parents=True)
    write_tiny(folder / "served.gguf")
    (tmp_path / ".config" / "fitagent").mkdir(parents=True)
    (tmp_path / ".config" / "fitagent" / "fitagent.yaml").write_text(f"model_dirs: [{folder}]\n")
    found = mine(local_models(cli, tmp_path), tmp_path)
    assert found["served"]["store"] == "folder" and found["served"]["path"] == str(folder / "served.gguf")


def test_model_dirs_config_checks(tmp_path):
    from fitagent.agent.config import ConfigError, load_config

    path = tmp_path / "fitagent.yaml"
    path.write_text("model_dirs: /srv/models\n")
    with pytest.raises(ConfigError, match="model_dirs must be a list"):
        load_config(path, environ={})
    path.write_text("model_dirs: [/srv/models, '']\n")
    with pytest.raises(ConfigError, match=r"model_dirs\[1\] must be a non-empty string"):
        load_config(path, environ={})
    assert load_config(None, environ={"FITAGENT_MODEL_DIRS": "/a,/b", "XDG_CONFIG_HOME": str(tmp_path)}).model_dirs == (
        "/a",
        "/b",
    )


# ---------------------------------------------------------------- installed, in recommendations


def test_recommend_installed(cli, home, snapshot_path):
    result = cli(
        "recommend",
        "--installed",
        "--json",
        "--hardware",
        snapshot_path("rtx4090"),
        "--all-quants",
        env=store_env(home),
    )
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    ranked = {e["model"]: e for e in body["ranked"]}
    assert set(ranked) == {LLAMA, QWEN}
    blob = mine(local_models(cli, home), home)["qwen2.5:0.5b-instruct-q8_0"]["path"]
    for entry in (e for points in (*body["frontiers"].values(), body["ranked"]) for e in points):
        if entry["model"] == QWEN:
            assert entry["installed"] == (entry["quant"] == "Q8_0")
            assert entry["installed_at"] == ([blob] if entry["quant"] == "Q8_0" else [])
            assert entry.get("installed_quants", ["Q8_0"]) == ["Q8_0"]
        else:
            assert entry["installed"] is False and entry["installed_quants"] == ["BF16"]
    everything = json.loads(
        cli("recommend", "--json", "--hardware", snapshot_path("rtx4090"), "--top", "3", env=store_env(home)).stdout
    )
    assert all("installed" in e and "installed_at" in e for e in everything["ranked"])
    assert len({e["model"] for e in everything["ranked"]}) == 3


def test_recommend_installed_with_nothing_installed(cli, tmp_path, snapshot_path):
    result = cli("recommend", "--installed", "--json", "--hardware", snapshot_path("rtx4090"), env=store_env(tmp_path))
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["ranked"] == [] and "none of the catalog's models is installed here" in body["notes"][-1]


# ---------------------------------------------------------------- a user catalog


def test_catalog_add_estimate_remove(cli, tmp_path):
    env = store_env(tmp_path)
    tiny = write_tiny(tmp_path / "mine.gguf", name="my tiny")[0]
    added = cli("catalog", "add", "--gguf", str(tiny), "--alias", "tiny", "--json", env=env)
    assert added.returncode == 0, added.stderr
    entry = json.loads(added.stdout)["added"]
    path = tmp_path / ".local/share/fitagent/models.yaml"
    assert (entry["id"], entry["alias"], json.loads(added.stdout)["path"]) == ("local/my-tiny", "tiny", str(path))
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    est = cli("estimate", "--model", "tiny", "--gpu", "RTX 4090", "--json", env=env)
    assert est.returncode == 0, est.stderr
    est = json.loads(est.stdout)
    assert est["model"] == "local/my-tiny" and est["quality_source"].startswith("estimated from size")
    assert est["params_total"] == entry["params_total"] and est["fits"]
    check = cli("catalog", "check", env=env)
    assert check.returncode == 0 and f"your own entries: 1 in {path} — valid" in check.stdout
    assert check.stdout.startswith("catalog: ")  # the built-in report is kept
    # a config from a Hugging Face snapshot takes its repo id; one with a built-in id replaces that entry
    snapshot = hf_repo(tmp_path / "hub", LLAMA, {"config.json": (HF_CONFIGS / "llama-3.1-8b.json").read_bytes()})
    replaced = cli("catalog", "add", "--hf-dir", str(snapshot), "--alias", "my-llama", env=env)
    assert replaced.returncode == 0 and f"replacing the built-in {LLAMA}" in replaced.stdout, replaced.stderr
    user = json.loads(cli("catalog", "check", "--json", env=env).stdout)["user_catalog"]
    assert user == {"path": str(path), "models": ["local/my-tiny", LLAMA], "replaces": [LLAMA]}
    assert json.loads(cli("estimate", "--model", "my-llama", "--gpu", "RTX 4090", "--json", env=env).stdout)[
        "quality_source"
    ].startswith("estimated from size")
    for name in ("tiny", LLAMA):
        assert cli("catalog", "remove", name, env=env).returncode == 0
    assert cli("estimate", "--model", "tiny", "--gpu", "RTX 4090", env=env).returncode == 2
    assert (
        json.loads(cli("estimate", "--model", LLAMA, "--gpu", "RTX 4090", "--json", env=env).stdout)["quality_source"]
        == "benchmarks"
    )


def test_catalog_add_refuses_what_it_cannot_keep(cli, tmp_path):
    env = store_env(tmp_path)
    taken = cli("catalog", "add", "--config", str(HF_CONFIGS / "qwen3-8b.json"), "--alias", "qwen3-8b", env=env)
    assert taken.returncode == 2 and "give another --alias" in taken.stderr
    assert cli("catalog", "add", env=env).returncode == 2
    builtin = cli("catalog", "remove", "Qwen/Qwen3-8B", env=env)
    assert builtin.returncode == 2 and "is built in" in builtin.stderr
    assert cli("catalog", "models", "--alias", "x", env=env).returncode == 2
    (tmp_path / ".local/share/fitagent").mkdir(parents=True)
    (tmp_path / ".local/share/fitagent/models.yaml").write_text("models:\n  - id: local/x\n")
    broken = cli("catalog", "check", env=env)
    assert broken.returncode == 2 and "models.yaml" in broken.stderr and len(broken.stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------- the agent


def test_agent_serves_installed_models_and_rescans(home, tmp_path):
    from agent_server import FAST_CONFIG, AgentProcess, copy_fixture

    extra = tmp_path / "extra"
    extra.mkdir()
    agent = AgentProcess(
        tmp_path,
        copy_fixture("rtx4090", tmp_path),
        env=store_env(home),
        config_text=FAST_CONFIG + f"model_dirs: [{extra}]\n",
    ).wait_ready()
    try:
        status, body = agent.get("/v1/models?installed=true")
        assert status == 200, body
        found = mine(body, home)
        assert set(found) == {
            LLAMA,
            "someone/tiny-GGUF",
            "qwen2.5:0.5b-instruct-q8_0",
            "lmstudio-community/tiny-GGUF",
            "bartowski_tiny-GGUF_tiny-F16",
        }
        qwen = found["qwen2.5:0.5b-instruct-q8_0"]
        assert (qwen["catalog_id"], qwen["fits"], qwen["placement"], qwen["context"]) == (QWEN, True, "gpu", 8192)
        assert qwen["launch"]["command"] == "ollama run qwen2.5:0.5b-instruct-q8_0"
        assert body["context"] == 8192 and body["scanned_at"]

        status, recs = agent.get("/v1/recommendations?top=200&all_quants=true")
        entries = [e for points in (*recs["frontiers"].values(), recs["ranked"]) for e in points]
        assert all("installed" in e and "installed_at" in e for e in entries)
        assert any(e["model"] == QWEN and e["quant"] == "Q8_0" and e["installed"] for e in entries)
        status, est = agent.get(f"/v1/estimate?model={QWEN}&quant=Q8_0")
        assert (status, est["installed"], est["installed_at"]) == (200, True, [qwen["path"]])
        status, models = agent.get("/v1/models")
        rows = {m["id"]: m for m in models["models"]}
        assert (rows[QWEN]["installed"], rows[QWEN]["installed_quants"]) == (True, ["Q8_0"])
        assert (rows[LLAMA]["installed"], rows[LLAMA]["installed_quants"]) == (True, ["BF16"])
        assert agent.get("/v1/models?installed=maybe")[0] == 400

        write_tiny(extra / "new-F16.gguf")  # appears at the next scan
        agent.rescan()
        status, body = agent.get("/v1/models?installed=true")
        assert "new-F16" in mine(body, tmp_path)
    finally:
        assert agent.stop() == 0


def test_a_damaged_cache_or_a_missing_folder_is_no_crash(tmp_path, catalog):
    from fitagent.agent.localmodels import scan
    from fitagent.agent.localmodels.cache import code_version

    folder = tmp_path / "models"
    folder.mkdir()
    write_tiny(folder / "a.gguf")
    cache = tmp_path / "scan.json"
    first = scan(catalog, store_env(tmp_path), paths=[str(folder)], cache_path=str(cache))
    data = json.loads(cache.read_text())
    assert data["version"] == code_version()
    (key,) = data["units"]
    data["units"][key]["record"] = {"kind": "nonsense"}
    cache.write_text(json.dumps(data))
    again = scan(catalog, store_env(tmp_path), paths=[str(folder)], cache_path=str(cache))
    assert (again.headers_read, [m.model for m in again.models]) == (1, [m.model for m in first.models])
    data["units"][key]["record"] = {"kind": "gguf", "model": {"id": 3}}
    cache.write_text(json.dumps(data))
    broken = scan(catalog, store_env(tmp_path), paths=[str(folder)], cache_path=str(cache))
    assert broken.models == () and "scan cache" in broken.problems[0][1]
    cache.write_text("not json")
    assert len(scan(catalog, store_env(tmp_path), paths=[str(folder)], cache_path=str(cache)).models) == 1
    gone = scan(catalog, store_env(tmp_path), paths=[str(tmp_path / "nowhere")], cache_path=None)
    assert gone.problems == ((str(tmp_path / "nowhere"), "no such file or folder"),)


def test_ollama_names_and_a_missing_blob(cli, tmp_path):
    store = tmp_path / "ollama"
    ollama_model(store, "tiny:latest", lambda p: write_tiny(p))
    ollama_model(store, "mine:v1", lambda p: write_tiny(p), namespace="someone")
    ollama_model(store, "tiny-GGUF:F16", lambda p: write_tiny(p), registry="hf.co", namespace="someone")
    gone = ollama_model(store, "gone:latest", lambda p: write_tiny(p))
    blob = json.loads(gone.read_text())["layers"][0]["digest"].replace(":", "-")
    (store / "blobs" / blob).unlink()
    body = local_models(cli, tmp_path, "--path", str(store))
    assert [r["layout"] for r in body["roots"]] == ["ollama"]
    assert sorted(m["name"] for m in body["models"]) == [
        "hf.co/someone/tiny-GGUF:F16",
        "someone/mine:v1",
        "tiny:latest",
    ]
    assert all(m["store"] == "ollama" and m["launch"]["command"] == f"ollama run {m['name']}" for m in body["models"])
    (problem,) = body["problems"]
    assert problem["path"] == str(gone) and f"names blob {blob}, which is not in" in problem["message"]
