"""The OpenAPI 3.1 description of every route (a test checks it against the app's URL map)."""

from __future__ import annotations

from typing import Any

from .params import ESTIMATE_PARAMS, RUNTIMES

_JSON = {"application/json": {"schema": {"type": "object"}}}
_ERROR = {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}

_PARAM_DOCS = {
    "use_case": (
        {"type": "string", "enum": ["general", "code", "tool-calling", "math", "vision"]},
        "weights the quality score (default from the config)",
    ),
    "context": (
        {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?[kKmM]?$", "examples": ["8192", "32k"]},
        "context length in tokens (default from the config)",
    ),
    "top": ({"type": "integer", "minimum": 1}, "how many ranked models (default from the config)"),
    "model": ({"type": "string"}, "catalog model id or alias"),
    "quant": ({"type": "string", "default": "Q4_K_M"}, "quantization"),
    "kv_quant": ({"type": "string", "enum": ["f16", "q8_0", "q4_0"], "default": "f16"}, "KV cache type"),
    "gpu_layers": ({"type": "integer", "minimum": 0}, "force this many layers on the GPUs (llama.cpp -ngl)"),
    "prompt_tokens": (
        {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?[kKmM]?$", "examples": ["512", "4k"]},
        "prompt length prefill and time to first token are quoted for (default 512)",
    ),
    "output_tokens": (
        {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?[kKmM]?$", "examples": ["256", "1k"]},
        "answer length: adds completion_time_s, the wait for the whole answer",
    ),
    "max_latency_s": (
        {"type": "number", "exclusiveMinimum": 0, "maximum": 86400},
        "the best-ranked model whose whole answer (output_tokens, default 256, after prompt_tokens, default 512) "
        "arrives within this many seconds",
    ),
    "since": ({"type": "integer", "minimum": 0}, "events after this id, oldest first (pass the last answer's `next`)"),
    "limit": ({"type": "integer", "minimum": 1}, "at most this many (default 100), oldest first"),
    "wait": ({"type": "number", "minimum": 0, "maximum": 60}, "wait up to this many seconds for the scan to finish"),
    "all_quants": (
        {"type": "boolean", "default": False},
        "also offer what the floor leaves out (quantizations that cost too much quality, low scores)",
    ),
    "installed": (
        {"type": "boolean", "default": False},
        "true: the models installed on this machine (Hugging Face cache, Ollama, LM Studio, llama.cpp's "
        "cache, model_dirs), each with its catalog id, how it fits now and its launch line",
    ),
    "explain": ({"type": "string"}, "a catalog model: say where it stands in the ranking and why (adds `explain`)"),
    "runtime": (
        {"type": "string", "enum": list(RUNTIMES), "default": "llama.cpp"},
        "the engine: llama.cpp; vllm or sglang (the `estimate --runtime vllm` JSON); mlx (Apple silicon); "
        "exllamav2 or exllamav3 (the `estimate --runtime exllamav2` JSON)",
    ),
    "concurrency": (
        {"type": "integer", "minimum": 1, "maximum": 4096},
        "runtime=vllm or sglang: sessions served at once",
    ),
    "gpu_memory_utilization": (
        {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "runtime=vllm or sglang: the share of each GPU's memory it takes (default 0.9; SGLang 0.88)",
    ),
    "cache_mode": ({"type": "string", "default": "FP16"}, "runtime=exllamav2 or exllamav3: the KV cache's format"),
}

# path -> method -> (summary, query parameters, required parameters, extra responses)
ROUTES: dict[str, dict[str, tuple[str, tuple[str, ...], tuple[str, ...], dict]]] = {
    "/": {
        "get": (
            "Page for people: GPUs, Pareto frontiers plot, ranked table, last scan",
            ("use_case", "context"),
            (),
            {"200": {"description": "HTML page", "content": {"text/html": {}}}},
        )
    },
    "/healthz": {
        "get": (
            "Agent health: last scan time, age, staleness and error",
            (),
            (),
            {"503": {"description": "no scan has succeeded yet", "content": _JSON}},
        )
    },
    "/openapi.json": {"get": ("This document", (), (), {})},
    "/v1/hardware": {
        "get": (
            "The current hardware snapshot (`fitagent probe --json`), with `runtimes`: what llama-server, vLLM "
            "and SGLang serving here reached (readings) and this box's measured ÷ estimated speed per runtime (factors)",
            (),
            (),
            {},
        )
    },
    "/v1/recommendations": {
        "get": (
            "Frontiers and ranking for a use case and context, with runtime flags",
            ("use_case", "context", "top", "all_quants", "explain"),
            (),
            {"404": _ERROR},
        )
    },
    "/v1/pick": {
        "get": (
            "The one best model, quantization and GPU layers, with runtime flags (max_latency_s: the best "
            "whose whole answer arrives in time)",
            ("use_case", "context", "max_latency_s", "output_tokens", "prompt_tokens"),
            (),
            {"404": _ERROR},
        )
    },
    "/v1/estimate": {
        "get": (
            "One candidate against the current snapshot, with runtime flags (runtime=vllm: vLLM's memory, KV "
            "blocks and batch at `concurrency`, the `estimate --runtime vllm` JSON; runtime=mlx: an MLX checkpoint "
            "on Apple silicon)",
            ESTIMATE_PARAMS,
            ("model",),
            {"404": _ERROR},
        )
    },
    "/v1/models": {
        "get": (
            "Catalog models, each with its best quantization that runs here (installed=true: the models "
            "installed on this machine)",
            ("use_case", "context", "installed"),
            (),
            {},
        )
    },
    "/v1/events": {"get": ("Recent changes between scans: free memory, processes, fits", ("since", "limit"), (), {})},
    "/metrics": {
        "get": (
            "Prometheus metrics from the current state: GPUs, host, scans, what fits (docs/fleet.md)",
            (),
            (),
            {
                "200": {
                    "description": "Prometheus text exposition (OpenMetrics when asked)",
                    "content": {"text/plain": {}},
                }
            },
        )
    },
    "/v1/rescan": {
        "post": (
            "Rescan now (needs the token: `Authorization: Bearer TOKEN`)",
            ("wait",),
            (),
            {"202": {"description": "scan scheduled", "content": _JSON}, "401": _ERROR},
        )
    },
}


def _operation(
    path: str, method: str, summary: str, params: tuple[str, ...], required: tuple[str, ...], extra: dict
) -> dict:
    responses: dict[str, Any] = {"400": _ERROR}
    if "200" not in extra and not (method == "post"):
        responses["200"] = {"description": "OK", "content": _JSON}
    if method == "post":
        responses["200"] = {"description": "scan finished (with wait)", "content": _JSON}
    if path.startswith("/v1/") and path not in ("/v1/events", "/v1/rescan"):
        responses["503"] = _ERROR
    responses.update(extra)
    op = {
        "summary": summary,
        "operationId": (method + path.replace("/", "_").replace(".", "_")).rstrip("_") or method,
        "parameters": [
            {
                "name": p,
                "in": "query",
                "required": p in required,
                "schema": _PARAM_DOCS[p][0],
                "description": _PARAM_DOCS[p][1],
            }
            for p in params
        ],
        "responses": dict(sorted(responses.items())),
    }
    if method == "post":
        op["security"] = [{"token": []}]
    return op


def openapi_document(version: str) -> dict:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "fitagent",
            "version": version,
            "description": "Which LLM, quantization and context fit this machine now. Memory in bytes, speed in tokens/s.",
        },
        "paths": {
            path: {method: _operation(path, method, *spec) for method, spec in methods.items()}
            for path, methods in ROUTES.items()
        },
        "components": {
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
            },
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
        },
    }
