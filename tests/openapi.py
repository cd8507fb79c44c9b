"""Validate emulator bodies against Azure's published OpenAPI document (../shared/azure-openai)."""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema

SPEC_CANDIDATES = [
    Path(__file__).resolve().parents[1] / "tests" / "data" / "inference-2024-10-21.json",
    Path(__file__).resolve().parents[2] / "shared" / "azure-openai" / "inference-2024-10-21.json",
]


@lru_cache(maxsize=1)
def spec() -> dict[str, Any]:
    for path in SPEC_CANDIDATES:
        if path.exists():
            return dict(json.loads(path.read_text()))
    raise FileNotFoundError(f"Azure OpenAPI document not found in {SPEC_CANDIDATES}")


def _json_schema(node: Any) -> Any:
    """OpenAPI 3.0 -> JSON Schema: ``nullable: true`` becomes a null alternative; refs stay as they are."""
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _json_schema(value) for key, value in node.items()}
    if out.pop("nullable", False):
        return {"anyOf": [out, {"type": "null"}]}
    return out


def validate(body: Any, schema: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``body`` fits ``schema`` (refs resolved in the spec)."""
    document = _json_schema(copy.deepcopy(spec()))
    wrapped = {**_json_schema(schema), "components": document["components"]}
    jsonschema.validate(body, wrapped, cls=jsonschema.Draft7Validator)


def component(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def embeddings_response_schema() -> dict[str, Any]:
    operation = spec()["paths"]["/deployments/{deployment-id}/embeddings"]["post"]
    return dict(operation["responses"]["200"]["content"]["application/json"]["schema"])
