"""Settings of the benchmark's servers: the product's settings plus the baseline endpoint (bench/urls.py) and, for
the sandbox process, an added upstream latency. Never used in production."""

import os

from portal.settings import *  # noqa: F403
from portal.settings import MIDDLEWARE

ROOT_URLCONF = "bench.urls"

# Milliseconds the sandbox waits before answering a WeChat / UMF call (the upstream's own latency).
BENCH_SANDBOX_LATENCY_MS = float(os.environ.get("BENCH_SANDBOX_LATENCY_MS", "0"))
if BENCH_SANDBOX_LATENCY_MS > 0:
    MIDDLEWARE = ["bench.views.UpstreamLatencyMiddleware", *MIDDLEWARE]
