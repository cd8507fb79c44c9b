"""``python -m spark_aoai.emulator``: serve the Azure OpenAI emulator until interrupted."""

from __future__ import annotations

import argparse
import sys

from spark_aoai.emulator._server import EmulatorServer
from spark_aoai.emulator._settings import Faults, RateLimit, Settings


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m spark_aoai.emulator",
        description="Serve an emulator of the Azure OpenAI chat completions and embeddings REST API.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--deployment",
        action="append",
        metavar="NAME=MODEL",
        help="serve only these deployments (repeatable), e.g. --deployment emb=text-embedding-3-small",
    )
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--api-key", help="require this key (api-key header or Bearer); default: accept any")
    parser.add_argument("--rpm", type=float, help="requests per minute per deployment (off by default)")
    parser.add_argument("--tpm", type=float, help="tokens per minute per deployment (off by default)")
    parser.add_argument("--rate-window", type=float, default=1.0, help="seconds the budgets are evaluated over")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--jitter", type=float, default=0.0, help="latency varies by +- this fraction")
    parser.add_argument("--error-500-rate", type=float, default=0.0)
    parser.add_argument("--error-503-rate", type=float, default=0.0)
    parser.add_argument("--drop-rate", type=float, default=0.0)
    parser.add_argument("--malformed-rate", type=float, default=0.0)
    parser.add_argument("--slow-rate", type=float, default=0.0)
    parser.add_argument("--slow-seconds", type=float, default=30.0)
    parser.add_argument("--content-filter-marker")
    parser.add_argument("--finish-content-filter-marker")
    parser.add_argument("--context-length-marker")
    parser.add_argument("--max-input-tokens", type=int)
    parser.add_argument("--quota-429-rate", type=float, default=0.0)
    parser.add_argument("--quota-retry-after-seconds", type=float, default=60.0)
    parser.add_argument("--bare-429-rate", type=float, default=0.0)
    parser.add_argument("--capacity-429-rate", type=float, default=0.0)
    parser.add_argument("--capacity-retry-after-seconds", type=float, default=30.0)
    parser.add_argument("--trickle-rate", type=float, default=0.0)
    parser.add_argument("--trickle-seconds", type=float, default=5.0)
    parser.add_argument("--content-parts-marker")
    parser.add_argument("--tool-calls-marker")
    parser.add_argument("--wrong-dimensions-marker")
    parser.add_argument("--non-finite-marker")
    parser.add_argument("--bad-structured-rate", type=float, default=0.0)
    parser.add_argument("--bad-structured-kind", choices=["not_json", "missing_field", "wrong_type"])
    parser.add_argument("--seed", type=int)
    parser.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--tls-key", help="the certificate's private key (PEM)")
    parser.add_argument("--quiet", action="store_true", help="print nothing on start")
    return parser.parse_args(argv)


def faults_from_args(args: argparse.Namespace) -> Faults:
    return Faults(
        latency_ms=args.latency_ms,
        jitter=args.jitter,
        error_500_rate=args.error_500_rate,
        error_503_rate=args.error_503_rate,
        drop_rate=args.drop_rate,
        malformed_rate=args.malformed_rate,
        slow_rate=args.slow_rate,
        slow_seconds=args.slow_seconds,
        content_filter_marker=args.content_filter_marker,
        finish_content_filter_marker=args.finish_content_filter_marker,
        context_length_marker=args.context_length_marker,
        max_input_tokens=args.max_input_tokens,
        quota_429_rate=args.quota_429_rate,
        quota_retry_after_seconds=args.quota_retry_after_seconds,
        bare_429_rate=args.bare_429_rate,
        capacity_429_rate=args.capacity_429_rate,
        capacity_retry_after_seconds=args.capacity_retry_after_seconds,
        trickle_rate=args.trickle_rate,
        trickle_seconds=args.trickle_seconds,
        content_parts_marker=args.content_parts_marker,
        tool_calls_marker=args.tool_calls_marker,
        wrong_dimensions_marker=args.wrong_dimensions_marker,
        non_finite_marker=args.non_finite_marker,
        bad_structured_rate=args.bad_structured_rate,
        bad_structured_kind=args.bad_structured_kind,
        seed=args.seed,
    )


def deployments_from_args(pairs: list[str] | None) -> dict[str, str] | None:
    if not pairs:
        return None
    registry = {}
    for pair in pairs:
        name, sep, model = pair.partition("=")
        if not sep or not name or not model:
            raise SystemExit(f"--deployment takes NAME=MODEL, not {pair!r}")
        registry[name] = model
    return registry


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = Settings(
        api_key=args.api_key,
        rate_limit=RateLimit(args.rpm, args.tpm, args.rate_window),
        faults=faults_from_args(args),
        deployments=deployments_from_args(args.deployment),
    )
    if bool(args.tls_cert) != bool(args.tls_key):
        raise SystemExit("--tls-cert and --tls-key go together")
    tls = (args.tls_cert, args.tls_key) if args.tls_cert else None
    server = EmulatorServer((args.host, args.port), settings, tls)
    if not args.quiet:
        host, port = str(server.server_address[0]), int(server.server_address[1])
        scheme = "https" if tls else "http"
        print(f"Azure OpenAI emulator on {scheme}://{host}:{port} (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
