"""``python -m spark_aoai.emulator``: serve the Azure OpenAI emulator until interrupted (Ctrl-C or SIGTERM).

Made for CI: every flag says its unit, bad values are one line on stderr and exit status 2 (no traceback), and
SIGTERM stops it with status 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import ssl
import sys
from typing import Any, NoReturn

from spark_aoai.emulator._server import EmulatorServer
from spark_aoai.emulator._settings import (
    BAD_STRUCTURED_KINDS,
    CHAT_COSTS,
    NO_TEXT_KINDS,
    NON_FINITE_LITERALS,
    PACK_SWAP_KINDS,
    RETRY_AFTERS,
    WINDOWS,
    BatchSettings,
    Faults,
    RateLimit,
    Settings,
)

PROG = "python -m spark_aoai.emulator"


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a rate is a probability between 0 and 1, not {text}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"cannot be negative, not {text}")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, not {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, not {text}")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"cannot be negative, not {text}")
    return value


# Faults field -> (argparse type, help). Rates are probabilities per request; markers are input substrings.
_FAULT_FLAGS: dict[str, tuple[Any, str]] = {
    "latency_ms": (_non_negative, "added latency per request, in milliseconds"),
    "jitter": (_non_negative, "the latency varies by +- this fraction of itself (0.5: 50%%..150%%)"),
    "error_500_rate": (_rate, "share of requests answered 500 (0..1)"),
    "error_503_rate": (_rate, "share of requests answered 503 (0..1)"),
    "drop_rate": (_rate, "share of requests whose connection is closed without an answer (0..1)"),
    "malformed_rate": (_rate, "share of requests answered 200 with a truncated JSON body (0..1)"),
    "slow_rate": (_rate, "share of requests held for --slow-seconds before the answer (0..1)"),
    "slow_seconds": (_non_negative, "how long a slow request is held, in seconds"),
    "content_filter_marker": (str, "input text that triggers a content-filter 400"),
    "finish_content_filter_marker": (str, "input text that triggers a 200 with finish_reason content_filter"),
    "context_length_marker": (str, "input text that triggers a context_length_exceeded 400"),
    "max_input_tokens": (_positive_int, "context limit in tokens for every model (default: each model's own)"),
    "quota_429_rate": (_rate, "share of requests refused with a quota 429 and a long retry-after (0..1)"),
    "quota_retry_after_seconds": (_non_negative, "retry-after of a quota 429, in seconds"),
    "bare_429_rate": (_rate, "share of requests refused with a 429 without retry-after headers (0..1)"),
    "capacity_429_rate": (_rate, "share of requests refused with Fabric's CapacityLimitExceeded 429 (0..1)"),
    "capacity_retry_after_seconds": (_non_negative, "Retry-After of a capacity 429, in seconds"),
    "trickle_rate": (_rate, "share of 200 bodies sent a few bytes at a time (0..1)"),
    "trickle_seconds": (_non_negative, "how long a trickled body takes in all, in seconds"),
    "content_parts_marker": (str, "input text that makes message.content a list of text parts"),
    "tool_calls_marker": (str, "input text that makes the answer a tool call with content null"),
    "wrong_dimensions_marker": (str, "input text whose embedding is one element short"),
    "non_finite_marker": (str, "input text whose embedding holds NaN and Infinity"),
    "bad_structured_rate": (_rate, "share of json_schema answers that do not fit the schema (0..1)"),
    "pack_drop_rate": (_rate, "share of a packed answer's items left out (0..1)"),
    "pack_corrupt_rate": (_rate, "share of packed items with a wrong or repeated id or a misfit output (0..1)"),
    "deep_body_marker": (str, "input text whose 200 body holds an array nested 5,000 levels deep (billed)"),
    "deep_answer_marker": (str, "input text whose answer text is an array nested 5,000 levels deep (billed)"),
    "non_finite_answer_marker": (str, "input text whose json_schema answer has non-finite numbers"),
    "non_finite_literal": (str, f"the number written then: {', '.join(NON_FINITE_LITERALS)}"),
    "no_text_marker": (str, "input text whose Responses API 200 has no usable text (billed)"),
    "no_text_kind": (str, f"how that answer lacks text: {', '.join(NO_TEXT_KINDS)}"),
    "seed": (int, "seed of the fault dice (the same seed replays the same faults)"),
    "cheap_wrong_rate": (_rate, "share of rows cheap models (gpt-4.1-nano, gpt-4o-mini, ...) answer wrong (0..1)"),
    "cheap_confidence_correlation": (_rate, "share of a cheap model's wrong rows it is unsure of (0..1)"),
    "pack_swap_rate": (_rate, "share of packed answers in which two items are mixed up (0..1)"),
    "pack_swap_kind": (str, f"how they are mixed up: {', '.join(PACK_SWAP_KINDS)} (default: any)"),
    "pack_injection_marker": (str, "input text that makes every item of its pack get its item's output"),
    "pack_ignore_rate": (_rate, "share of packed requests answered as plain text, ignoring the format (0..1)"),
}


# BatchSettings field -> (argparse type, help); the flag of ``max_lines`` is ``--batch-max-lines``.
_BATCH_FLAGS: dict[str, tuple[Any, str]] = {
    "seconds": (_non_negative, "how long a batch takes from created to completed, in seconds"),
    "max_lines": (_positive_int, "most requests (lines) in a batch input file; more fails the batch (too_many_tasks)"),
    "max_bytes": (_positive_int, "largest batch input file in bytes; a larger upload is refused with a 400"),
    "line_error_rate": (_rate, "share of batch lines with no response, error request_timeout, by custom_id (0..1)"),
    "fail_rate": (_rate, "share of batches that fail with token_limit_exceeded (0..1)"),
    "fail_marker": (str, "input-file text that makes its batch fail with token_limit_exceeded"),
    "expire_after_lines": (_count, "a batch stops after this many lines and ends expired (the rest: batch_expired)"),
    "text_status_marker": (str, 'input text whose output line has status_code "OK" instead of a number'),
    "duplicate_marker": (str, "input text whose output line comes twice, the second with another answer"),
    "lost_create_rate": (_rate, "share of batch creations made but answered 500, the answer lost (0..1)"),
    "list_error_rate": (_rate, "share of batch listings answered 500 (0..1)"),
    "list_ignores_after_rate": (_rate, "share of batch listings that ignore 'after': the first page again (0..1)"),
    "cancel_error_rate": (_rate, "share of batch cancels answered 500, nothing done (0..1)"),
    "cancel_stuck_rate": (_rate, "share of batch cancels that leave the batch cancelling for good (0..1)"),
    "hold_calls": (str, "Files/Batch calls held unanswered, comma-separated: 'GET batches/{id}', ..."),
    "hold_seconds": (_non_negative, "how long a held Files/Batch call waits before its answer, in seconds"),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line on stderr and status 2, without the usage block."""
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from spark_aoai import __version__

    parser = _Parser(
        prog=PROG,
        description="Serve an emulator of the Azure OpenAI chat completions, embeddings, responses, Files and Batch "
        "REST APIs.",
    )
    parser.add_argument("--version", action="version", version=f"spark_aoai {__version__}")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8765, help="TCP port; 0 picks a free one (default: %(default)s)")
    parser.add_argument("--api-key", help="require this key (api-key header or Bearer); default: accept any")
    parser.add_argument(
        "--deployment",
        action="append",
        metavar="NAME=MODEL",
        help="serve only these deployments (repeatable), e.g. --deployment emb=text-embedding-3-small; "
        "default: the deployments named after a known model (gpt-4o, gpt-4o-2024-08-06, text-embedding-3-small)",
    )
    parser.add_argument(
        "--extra-deployment",
        action="append",
        metavar="NAME=MODEL",
        help="without --deployment, serve this deployment too (repeatable), e.g. --extra-deployment my-chat=gpt-4o",
    )
    parser.add_argument("--rpm", type=_positive, help="requests per minute per deployment (default: no limit)")
    parser.add_argument("--tpm", type=_positive, help="tokens per minute per deployment (default: no limit)")
    parser.add_argument(
        "--rate-window", type=_positive, default=1.0, help="seconds the budgets are evaluated over (default: 1)"
    )
    defaults = Faults()
    for name, (kind, text) in _FAULT_FLAGS.items():
        default = getattr(defaults, name)
        shown = f" (default: {default})" if default not in (None, 0.0) else ""
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=default, help=text + shown)
    batch_defaults = BatchSettings()
    for name, (kind, text) in _BATCH_FLAGS.items():
        default = getattr(batch_defaults, name)
        shown = f" (default: {default})" if default not in (None, 0.0) else ""
        parser.add_argument(f"--batch-{name.replace('_', '-')}", type=kind, default=default, help=text + shown)
    parser.add_argument(
        "--bad-structured-kind",
        choices=BAD_STRUCTURED_KINDS,
        help="how a bad json_schema answer is broken (default: any of them)",
    )
    parser.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM file)")
    parser.add_argument("--tls-key", help="the certificate's private key (PEM file)")
    parser.add_argument(
        "--log-requests",
        action="store_true",
        help="print a line per request: method, path (query without secrets), status, milliseconds",
    )
    parser.add_argument("--quiet", action="store_true", help="print nothing on start")
    parser.add_argument(
        "--rate-shape",
        choices=WINDOWS,
        default="continuous",
        help="continuous: budgets refilled continuously (--rate-window seconds of burst); sliding: requests counted "
        "over the last --rate-window seconds and tokens over the last 60 s (default: %(default)s)",
    )
    parser.add_argument(
        "--no-limit-headers", action="store_true", help="send x-ratelimit-remaining-* without x-ratelimit-limit-*"
    )
    parser.add_argument(
        "--retry-after",
        choices=RETRY_AFTERS,
        default="ms",
        help="a rate-limit 429's headers: retry-after-ms and retry-after, or only a whole-second Retry-After "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--chat-cost",
        choices=CHAT_COSTS,
        default="prompt+max_tokens",
        help="what a chat request costs the token budget (default: %(default)s; max_tokens is 16 when unset)",
    )
    parser.add_argument(
        "--no-cheap-logprobs",
        dest="cheap_logprobs",
        action="store_false",
        help="cheap models answer logprobs: null even when asked (a deployment without logprobs)",
    )
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def faults_from_args(args: argparse.Namespace) -> Faults:
    names = [f.name for f in dataclasses.fields(Faults) if hasattr(args, f.name)]
    return Faults(**{name: getattr(args, name) for name in names})


def batch_from_args(args: argparse.Namespace) -> BatchSettings:
    return BatchSettings(**{name: getattr(args, f"batch_{name}") for name in _BATCH_FLAGS})


def deployments_from_args(pairs: list[str] | None, flag: str = "--deployment") -> dict[str, str] | None:
    if not pairs:
        return None
    registry = {}
    for pair in pairs:
        name, sep, model = pair.partition("=")
        if not sep or not name or not model:
            _fail(f"{flag} takes NAME=MODEL, not {pair!r}")
        registry[name] = model
    return registry


def _fail(message: str) -> NoReturn:
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


_SETTLE_SECONDS = 2.0  # on SIGTERM or Ctrl-C, the requests being answered get this long to finish


class _TerminatedError(BaseException):
    """Raised in the main thread by SIGTERM, to leave ``serve_forever`` and exit 0. A ``BaseException``, as
    ``KeyboardInterrupt`` is: the server's ``except Exception`` around a request it is taking would swallow it."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise _TerminatedError


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = Settings(
            api_key=args.api_key,
            rate_limit=RateLimit(
                args.rpm,
                args.tpm,
                args.rate_window,
                args.rate_shape,
                not args.no_limit_headers,
                args.retry_after,
                args.chat_cost,
            ),
            faults=faults_from_args(args),
            deployments=deployments_from_args(args.deployment),
            batch=batch_from_args(args),
            extra_deployments=deployments_from_args(args.extra_deployment, "--extra-deployment") or {},
        )
    except ValueError as error:  # a setting out of its range or choices
        _fail(str(error))
    if args.deployment and args.extra_deployment:
        _fail("--extra-deployment adds to the known model names; with --deployment, list every deployment there")
    if bool(args.tls_cert) != bool(args.tls_key):
        _fail("--tls-cert and --tls-key go together")
    tls = (args.tls_cert, args.tls_key) if args.tls_cert else None
    for path in tls or ():
        if not os.path.isfile(path):
            _fail(f"TLS file not found: {path}")
    try:
        server = EmulatorServer((args.host, args.port), settings, tls, log_requests=args.log_requests)
    except ssl.SSLError as error:
        _fail(f"cannot load the TLS certificate and key: {error.reason or error}")
    except OSError as error:
        if error.errno in (98, 48, 10048):  # EADDRINUSE on Linux, macOS, Windows
            _fail(f"port {args.port} on {args.host} is already in use")
        _fail(f"cannot serve on {args.host}:{args.port}: {error.strerror or error}")
    signal.signal(signal.SIGTERM, _on_sigterm)
    if not args.quiet:
        host, port = str(server.server_address[0]), int(server.server_address[1])
        scheme = "https" if tls else "http"
        print(f"Azure OpenAI emulator on {scheme}://{host}:{port} (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except (KeyboardInterrupt, _TerminatedError):
        server.settle(_SETTLE_SECONDS)  # the requests it was answering get their answer and log line
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
