"""The service's Prometheus series, on its own registry (served at `/metrics`). Every label comes from a
closed set (route template, status class, outcome): the number of series never grows with traffic."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

ROUTES = (
    "/v1/articles",
    "/v1/articles/{id}",
    "/v1/changes",
    "/healthz",
    "/metrics",
    "/openapi.json",
    "other",
)
OUTCOMES = ("accepted", "new", "rejected")


class ServiceMetrics:
    """The series one server process keeps."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)  # CPU seconds, resident memory, open files
        PlatformCollector(registry=self.registry)
        self.requests = Counter(
            "newsflow_http_requests",
            "HTTP requests answered, by route and status code.",
            ("route", "code"),
            registry=self.registry,
        )
        self.duration = Histogram(
            "newsflow_http_request_duration_seconds",
            "Time to answer a request, by route.",
            ("route",),
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
            registry=self.registry,
        )
        self.articles = Counter(
            "newsflow_http_articles",
            "Records submitted over HTTP: accepted (valid, persisted), new (of those, not stored before), rejected.",
            ("outcome",),
            registry=self.registry,
        )
        self.body_bytes = Counter(
            "newsflow_http_body_bytes", "Bytes of submission bodies read.", registry=self.registry
        )
        self.submitting = Gauge(
            "newsflow_http_submissions_in_progress",
            "Submissions being read or persisted right now.",
            registry=self.registry,
        )

    def observe(self, route: str, code: int, seconds: float) -> None:
        """Count one answered request."""
        route = route if route in ROUTES else "other"
        self.requests.labels(route, str(code)).inc()
        self.duration.labels(route).observe(seconds)
