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
# a request that a deployment refused with a 429 (a rate signal, not an exhausted quota) goes on to the next one
# whose breaker is closed, and one waiting for a deployment that refused so within FAILOVER_SPILL_SECONDS goes on at
# its recheck: a rate-limited primary slows only itself, even when its pace holds its breaker below
# BREAKER_MIN_OUTCOMES (#24 point 7)
FAILOVER_SPILL_SECONDS = 5.0

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

# _auth.py
REFRESH_MARGIN_SECONDS = 300.0
OPAQUE_TOKEN_LIFETIME_SECONDS = 600.0
MIN_SECRET_CHARS = 8  # shorter values are masked nowhere: "wrong" must not garble "wrong API endpoint"

# _batch_service.py
BATCH_LONGEST_BACKOFF_SECONDS = 1800.0

# _cascade_stage.py
CASCADE_SAMPLE_SEED = 29
# a cheap answer without logprobs is asked again with these sampling options; its score: do the answers agree
CASCADE_SECOND_ANSWER = {"temperature": 1.0, "seed": CASCADE_SAMPLE_SEED}

# _check.py
CHECK_PROBE_ANSWER_TOKENS = 16

# _confidence.py
LOGPROB_MAX_TOKENS_READ = 200_000  # logprob entries read from one answer (a hostile body cannot make it loop for long)

# _packgate.py
PACK_PROBE_ITEMS = 2  # the probe's size: what a server that ignores the format costs, twice, before packing stops
PACK_PROBE_FAILURES = 2  # probes answered with no usable item before the task stops packing

# _packing.py
ITEM_OVERHEAD_TOKENS = 12  # what ``{"id": "12", "input": "", "tag": "ab"}`` and its answer's id and tag add

# _packproof.py
PACK_MIN_TIED_CHARS = 3  # shorter texts (a one-letter label) tie to too many inputs to tell anything
PACK_MIN_TAKEN_OVER = 3  # a pack this large whose items all got one output tied to an input is asked again

# _progress.py
PROGRESS_DEFAULT_INTERVAL_SECONDS = 2.0

# _ratecontrol.py
RATE_MEASURE_SECONDS = 2.0
RATE_ADJUST_SECONDS = 0.1
RATE_MIN_PACE = 0.2
RATE_STEP_SHARE = 0.06  # additive step per adjustment, as a share of the pace the partition started pacing at
RATE_TREND_SECONDS = 1.0  # remaining-budget samples used for the level and its trend
RATE_HORIZON = 0.5  # seconds ahead that the level is extrapolated along its trend (damps the loop)
RATE_THROTTLE_CUT = 0.85  # the deepest cut of the pace on a 429
RATE_MIN_CUT = 0.08  # the mildest (a retry-after of a few ms: barely over)
RATE_CUT_PER_SECOND = 0.5  # the cut deepens by this share per second of retry-after
RATE_DISTRUST_SECONDS = 2.0  # after a 429, grow no faster than additively, whatever the headers say
RATE_INITIAL_WINDOW = 8  # requests in flight at a partition's start; +1 per success after (slow start)
RATE_BLIND_GROWTH = 0.03  # per adjustment, without a fresh reading of the budget and no 429 lately
RATE_STALE_SECONDS = 2.0  # a budget reading older than this when it arrives (a slow model's) does not steer
RATE_DOUBLING_SECONDS = 0.5  # and, unpaced, at least doubled this often, answered or not
RATE_SLOW_START_EXIT = 0.75  # unpaced, a remaining budget under this share switches pacing on
RATE_BAND_LOW = 0.02  # paced, the remaining budget share steered into this band and held there (#26)
RATE_BAND_HIGH = 0.06  # above it, spare budget: the pace grows in proportion
# paced, the band is measured after the last request's tokens are set aside (one request above empty), as a
# share of the token budget, at most RATE_REQUEST_RESERVE_MAX (a pack is paced by its tokens: TokenCredit)
RATE_REQUEST_RESERVE_MAX = 0.1
RATE_SPARE_GROWTH = 0.1  # per adjustment, the pace grows by this share per unit of spare above the band
RATE_SPARE_STEP = 0.3  # and by this share of the additive step (the shares converge)
RATE_BAND_SHRINK = 0.005  # below the band, the pace shrinks by up to this share per adjustment
RATE_BAND_STEP = 0.05  # inside the band, the pace grows by this share of the additive step (shares converge)
RATE_RUN_OUT_SHRINK = 0.05  # the deepest shrink per adjustment, when the trend says the budget runs out
RATE_DISTRUSTED_SPARE = 0.3  # just after a 429, a level above this counts as this (another budget may be out)
RATE_CONFIRM_SECONDS = 5.0  # a 429 this recent makes a partition without budget readings probe carefully

# _semantic_agg.py
AGG_MAX_LEVELS = 32  # a budget that cannot shrink the answers would loop; no real tree is this deep

# _semantic_join.py
JOIN_DEFAULT_K = 5
JOIN_DEFAULT_MAX_LISTED_ROWS = 30

# _semantic_spark.py
JOIN_BLOCK_ROWS = 1024  # rows of one side per block: a block pair is one matrix product on an executor

# _semantic_topk.py
TOP_K_MAX_LISTED = 50  # candidates in one ranking prompt: more and list-wise answers get unreliable

# _stats.py
STATS_FLUSH_SECONDS = 1.0

# _timeline.py
TIMELINE_MAX_BUCKETS = 240

# _tokencredit.py
TOKEN_CREDIT_SHARE = 0.5
TOKEN_CREDIT_IDLE_WAIT_SECONDS = 5.0  # with nothing in flight, a request waits for the credit at most this long

# _tokens.py
DEFAULT_COMPLETION_TOKENS = 16  # protocol fact: what Azure's limiter charges a chat request without max_tokens
ATTACHMENT_TOKENS = 85  # protocol fact: a low-detail image's tokens (an offline estimate for any attachment)

# _usage.py
STATS_OBSERVATION_WAIT_SECONDS = 5.0
