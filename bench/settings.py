"""Settings of the benchmark's servers: the product's settings plus the baseline endpoint (bench/urls.py) and, for
the sandbox process, the upstream's behaviour (bench.views.UpstreamLatencyMiddleware). Never used in production."""

import os

from portal.settings import *  # noqa: F403
from portal.settings import MIDDLEWARE

ROOT_URLCONF = "bench.urls"

# Given to the sandbox's process only: milliseconds it waits before answering a WeChat / UMF call (the upstream's own
# latency) until the benchmark sets another value at run time (bench.views.set_upstream).
if "BENCH_SANDBOX_LATENCY_MS" in os.environ:
    BENCH_SANDBOX_LATENCY_MS = float(os.environ["BENCH_SANDBOX_LATENCY_MS"])
    MIDDLEWARE = ["bench.views.UpstreamLatencyMiddleware", *MIDDLEWARE]
