"""Server metrics in the Prometheus text format (``GET /metrics``).

Counters of requests by route and status and of connections evicted at the
cap, a histogram of request latency and one of the batch sizes the model
ran, and the requests in flight. Kept
under one lock: an update is a few additions, far below a request's cost.
"""
import bisect
import threading

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Histogram:
    def __init__(self, buckets):
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0

    def observe(self, value):
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value

    def lines(self, name):
        total = 0
        for bound, count in zip(self.buckets + ("+Inf",), self.counts):
            total += count
            yield f'{name}_bucket{{le="{bound}"}} {total}'
        yield f"{name}_sum {self.sum:.6f}"
        yield f"{name}_count {total}"


class Metrics:
    def __init__(self):
        self.requests = {}                 # (route, status) -> count
        self.latency = Histogram(LATENCY_BUCKETS)
        self.batches = Histogram(BATCH_BUCKETS)
        self.in_flight = 0
        self.evictions = 0
        self._lock = threading.Lock()

    def started(self):
        with self._lock:
            self.in_flight += 1

    def finished(self, route, status, seconds):
        with self._lock:
            self.in_flight -= 1
            key = (route, status)
            self.requests[key] = self.requests.get(key, 0) + 1
            self.latency.observe(seconds)

    def evicted(self):
        with self._lock:
            self.evictions += 1

    def batch(self, rows):
        with self._lock:
            self.batches.observe(rows)

    def render(self):
        with self._lock:
            lines = ["# HELP edgebnn_requests_total Requests answered, by route and HTTP status.",
                     "# TYPE edgebnn_requests_total counter"]
            lines += [f'edgebnn_requests_total{{route="{route}",status="{status}"}} {count}'
                      for (route, status), count in sorted(self.requests.items())]
            lines += ["# HELP edgebnn_request_seconds Time from a request's arrival to its reply.",
                      "# TYPE edgebnn_request_seconds histogram",
                      *self.latency.lines("edgebnn_request_seconds"),
                      "# HELP edgebnn_batch_rows Samples per model call (dynamic batches merge requests).",
                      "# TYPE edgebnn_batch_rows histogram",
                      *self.batches.lines("edgebnn_batch_rows"),
                      "# HELP edgebnn_requests_in_flight Requests being answered now.",
                      "# TYPE edgebnn_requests_in_flight gauge",
                      f"edgebnn_requests_in_flight {self.in_flight}",
                      "# HELP edgebnn_connections_evicted_total Connections closed at the cap "
                      "to make room (each was still waiting for its request).",
                      "# TYPE edgebnn_connections_evicted_total counter",
                      f"edgebnn_connections_evicted_total {self.evictions}"]
        return "\n".join(lines) + "\n"
