"""Every default and fixed number of the library, in one place (Params, settings and policies read these)."""

from __future__ import annotations

DEFAULT_API_VERSION = "2025-04-01-preview"
ENV_ENDPOINT = "AZURE_OPENAI_ENDPOINT"
ENV_API_KEY = "AZURE_OPENAI_API_KEY"
ENV_API_VERSION = "OPENAI_API_VERSION"

# Retries (RetryPolicy)
MAX_ATTEMPTS = 10
BASE_DELAY_SECONDS = 0.5
MAX_DELAY_SECONDS = 30.0
MAX_RETRY_AFTER_SECONDS = 60.0
UNKNOWN_SHAPE_RESENDS = 1  # a billed 200 whose JSON has a shape no parser knows is sent again this many times
# a credential that failed this many times in a row before it ever produced a token fails the task
CREDENTIAL_FAILURES_SYSTEMIC = 3

# Time limits (Limits)
CONNECT_TIMEOUT_SECONDS = 10.0
REQUEST_TIMEOUT_SECONDS = 300.0

# Concurrency per partition, by API
CHAT_CONCURRENCY = 128
EMBEDDING_CONCURRENCY = 8

# Embeddings
EMBEDDING_BATCH_SIZE = 1000
EMBEDDING_MAX_BATCH_TOKENS = 200_000
MAX_EMBEDDING_INPUTS = 2048  # Azure's limit per request
VECTOR_CACHE_BYTES = 64 * 2**20

# Structured output
OUTPUT_RETRIES = 1  # re-asks after an answer that does not fit the output schema
RAW_ANSWER_CHARS = 500  # of a misfit answer, kept in its invalid_output message

# Images and files (imageCol, fileCol)
MAX_INPUT_BYTES = 20 * 2**20  # Azure's limit for an image in a request

# The spend cap (maxTotalTokens, maxCost): a request that does not fit waits this long at most for the
# requests in flight to settle (polling the ledger), then its row is budget_exhausted
BUDGET_SETTLE_SECONDS = REQUEST_TIMEOUT_SECONDS
BUDGET_POLL_SECONDS = 0.05

# Failover (deployments=[...]): a circuit breaker per deployment. It opens when, of the deployment's last
# BREAKER_WINDOW outcomes within BREAKER_WINDOW_SECONDS (at least BREAKER_MIN_OUTCOMES of them), more than
# BREAKER_FAILURE_SHARE failed; then new requests go to the next deployment, and one probe goes to it every
# BREAKER_OPEN_SECONDS until one succeeds.
BREAKER_WINDOW = 20
BREAKER_WINDOW_SECONDS = 30.0
BREAKER_MIN_OUTCOMES = 10
BREAKER_FAILURE_SHARE = 0.5
BREAKER_OPEN_SECONDS = 5.0
# a request waiting for its deployment's rate controller looks this often for a deployment it should go to instead
FAILOVER_RECHECK_SECONDS = 0.25

# The partition engine
MAX_PENDING_BATCHES = 2
MAX_MESSAGE_CHARS = 2000  # longest error message kept in a row's error value

# The response cache (cacheDir): answers are written in increments of this many, or this often
CACHE_FLUSH_ANSWERS = 200
CACHE_FLUSH_SECONDS = 2.0
# The directory under cacheDir. Its entries' names (the cache keys) are pinned; an entry's content gained the key
# it answers ({"key", "answer"}): an entry of the first form (the bare answer) is a miss, asked and stored again.
CACHE_FORMAT = "spark_aoai-cache-v1"
CACHE_MAX_ENTRY_BYTES = 256 * 2**20  # a larger entry is not read (a miss): no stored answer is that large
CACHE_WRITE_FAILURES = 3  # entries a task fails to write before it gives the store up (its answers still returned)

# Dedup of identical requests within a task: answers remembered for repeats in later batches
DEDUP_MEMO_ENTRIES = 20_000

# Prompt packing (rowsPerRequest="auto"): prompt tokens and rows per packed request.
MAX_PACK_TOKENS = 4000
MAX_PACK_ROWS = 50

# Batch mode (Azure's Batch API)
BATCH_MAX_LINES_PER_FILE = 100_000  # Azure's limits of one input file
BATCH_MAX_BYTES_PER_FILE = 200 * 10**6
BATCH_TIMEOUT_HOURS = 24.0
BATCH_POLL_SECONDS = 60.0  # the longest wait between two polls (they start at BATCH_FIRST_POLL_SECONDS)
BATCH_FIRST_POLL_SECONDS = 1.0
BATCH_COMPLETION_WINDOW = "24h"
# a Files/Batch call's attempt waits requestTimeout for its answer; an upload also this long per byte sent (a 200
# MB file: 200 s more), a download requestTimeout for each chunk (a large output file takes as long as it streams)
BATCH_UPLOAD_BYTES_PER_SECOND = 1_000_000
BATCH_MAX_LIST_PAGES = 100  # a listing of batches or files reads at most this many pages (of 100)
BATCH_MAX_FILES = 500  # Azure's input files per resource
BATCH_PRICE_FACTOR = 0.5  # Azure's Global Batch: 50% of the Global Standard price
BATCH_FILE_READY_SECONDS = 600.0  # the longest wait for an upload to be processed before its batch is created
# after batchTimeoutHours, the wait for cancelled batches to end: this share of batchTimeoutHours, at least
# BATCH_CANCEL_WAIT_MIN_SECONDS and at most BATCH_CANCEL_WAIT_SECONDS (Azure cancels within 10 minutes; of 24 h: 10 min)
BATCH_CANCEL_WAIT_SHARE = 0.01
BATCH_CANCEL_WAIT_MIN_SECONDS = 10.0
BATCH_CANCEL_WAIT_SECONDS = 600.0

# Context limits (prompt + completion, tokens) of the chat models ``ai.agg`` and ``ai.top_k`` budget prompts by,
# matched by the longest name a deployment starts with; another deployment needs ``maxPromptTokens``.
CONTEXT_TOKENS = {
    "gpt-4o": 128_000, "gpt-4o-mini": 128_000, "gpt-4.1": 1_047_576, "gpt-4.5": 128_000, "gpt-4": 8_192,
    "gpt-4-32k": 32_768, "gpt-4-turbo": 128_000, "gpt-35-turbo": 16_385, "gpt-3.5-turbo": 16_385,
    "gpt-5": 272_000, "gpt-5-chat": 128_000, "o1": 200_000, "o1-mini": 128_000, "o3": 200_000, "o4-mini": 200_000,
}  # fmt: skip
COMPLETION_RESERVE_TOKENS = 4_096  # kept free of the prompt for the answer
PROMPT_SAFETY = 0.97  # of the budget actually filled: token counts of joined items differ slightly
