"""The 200 bodies: chat completions, embeddings and responses, shaped as Azure's OpenAPI document says.

The content comes from :mod:`spark_aoai.emulator._model` (pure functions of the request); this module wraps it
in ids, usage, content-filter annotations and, for embeddings, the float or base64 encoding.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

from spark_aoai.emulator import _cheap, _faults
from spark_aoai.emulator._catalog import reasoning_tokens
from spark_aoai.emulator._errors import content_filter_result
from spark_aoai.emulator._model import chat_reply, embed_texts, embedding_dimensions, message_text, structured_reply
from spark_aoai.emulator._settings import Faults
from spark_aoai.emulator._state import State
from spark_aoai.emulator._tokencount import count_message_tokens, count_tokens, truncate_to_tokens


def chat(model: str, body: dict[str, Any], faults: Faults, state: State) -> dict[str, Any]:
    """A chat completion for the deployment of ``model``."""
    messages = body["messages"]
    text = " ".join(message_text(m.get("content")) for m in messages)
    response_format = body.get("response_format") or {}
    filtered = bool(faults.finish_content_filter_marker and faults.finish_content_filter_marker in text)
    if filtered:
        content = ""
    elif response_format.get("type") in ("json_object", "json_schema"):
        content = structured_reply(messages, response_format)
        if response_format.get("type") == "json_schema":
            schema = (response_format.get("json_schema") or {}).get("schema")
            content = _faults.misfit(state, faults, content, schema, messages)
            content = _faults.broken_pack(state, faults, content, schema)
            content = _faults.mixed_pack(state, faults, content, schema, messages)
            content = _faults.non_finite(faults, content, text)
    else:
        content = chat_reply(messages)
    logprobs = None
    if not filtered:
        content, logprobs = _cheap.answer(model, body, content, faults)
    if _faults.marked(faults.deep_answer_marker, text):
        content = _faults.nested()
    thinking = reasoning_tokens(model, body.get("reasoning_effort"))
    limit = int(body.get("max_completion_tokens") or body.get("max_tokens") or 0)
    cut = limit > 0 and thinking + count_tokens(content, model) > limit
    if cut:
        thinking = min(thinking, limit)
        content = truncate_to_tokens(content, limit - thinking, model)
    message, finish = _faults.odd_chat_message(faults, body, text, content)
    if filtered:
        finish = "content_filter"
    elif cut:
        finish = "length"
    prompt_tokens = count_message_tokens(messages, model)
    answered = json.dumps(message["tool_calls"]) if message["content"] is None else content
    completion_tokens = thinking + count_tokens(answered, model)
    cached = state.cached_tokens(f"{model}\n{text}", prompt_tokens)[0]
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_emulator",
        "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": content_filter_result("")}],
        "choices": [
            {
                "index": 0,
                "finish_reason": finish,
                "logprobs": logprobs,
                "message": message,
                "content_filter_results": content_filter_result("hate" if filtered else ""),
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached},
            "completion_tokens_details": {"reasoning_tokens": thinking},
        },
    }


def embeddings(
    model: str,
    body: dict[str, Any],
    inputs: list[str],
    tokens: int,
    faults: Faults,
    order: list[int] | None = None,
) -> dict[str, Any] | bytes:
    """The vectors for ``inputs``, listed in ``order`` (a shuffle fault) or in input order."""
    dimensions = embedding_dimensions(model, body.get("dimensions"))
    vectors: Any = embed_texts(inputs, dimensions)
    vectors = _faults.broken_vectors(faults, inputs, vectors) or vectors
    order = order if order is not None else list(range(len(inputs)))
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    if body.get("encoding_format") == "base64":
        # Built as bytes: base64 needs no JSON escaping, and json.dumps of megabytes would dominate.
        items = b",".join(
            b'{"object":"embedding","index":%d,"embedding":"%s"}'
            % (index, base64.b64encode(vectors[index].astype("<f4", copy=False).tobytes()))
            for index in order
        )
        head = json.dumps({"object": "list", "model": model, "usage": usage})[:-1].encode()
        return head + b',"data":[' + items + b"]}"
    data = [{"object": "embedding", "index": i, "embedding": vectors[i].tolist()} for i in order]
    return {"object": "list", "model": model, "data": data, "usage": usage}
