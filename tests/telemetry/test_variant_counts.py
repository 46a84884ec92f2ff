"""The per-variant invocation metrics print what prometheus_client's own types print."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from modelhost.telemetry.metrics import LABELS, LATENCY_BUCKETS_US, InvocationMetrics
from modelhost.telemetry.variant_counts import COUNTERS, HISTOGRAMS

CALLS = [
    # (endpoint, variant, status, instances, model µs, total µs)
    ("ep", "Blue", 200, 2, 80.0, 95.0),
    ("ep", "Blue", 200, 2, 5.0, 5.0),  # exactly on a bucket bound; zero overhead
    ("ep", "Blue", 404, 2, 300.0, 320.0),
    ("ep", "Green", 503, 1, 7e7, 7e7 + 12.5),  # past the last finite bucket
    ("other", "AllTraffic", 200, 3, 120.0, 100.0),  # total < model: overhead 0
]


def reference() -> str:
    """The same observations through prometheus_client's Counter and Histogram."""
    r = CollectorRegistry()
    counters = {name: Counter(name, doc, LABELS, registry=r) for name, doc in COUNTERS}
    histograms = {
        name: Histogram(name, doc, LABELS, buckets=LATENCY_BUCKETS_US, registry=r)
        for name, doc in HISTOGRAMS
    }
    for endpoint, variant, status, instances, model_us, total_us in CALLS:
        key = (endpoint, variant)
        counters["Invocations"].labels(*key).inc()
        counters["Invocation4XXErrors"].labels(*key).inc(1 if 400 <= status < 500 else 0)
        counters["Invocation5XXErrors"].labels(*key).inc(1 if status >= 500 else 0)
        counters["InvocationsPerInstance"].labels(*key).inc(1.0 / instances)
        histograms["ModelLatency"].labels(*key).observe(model_us)
        histograms["OverheadLatency"].labels(*key).observe(max(total_us - model_us, 0.0))
    return generate_latest(r).decode()


def variant_lines(text: str) -> list[str]:
    """The lines of the per-variant families, without `_created` samples."""
    names = {name for name, _ in (*COUNTERS, *HISTOGRAMS)}
    out = []
    for line in text.splitlines():
        sample = line.split()[2] if line.startswith("#") else line.split("{")[0].split()[0]
        family = sample.removesuffix("_total").removesuffix("_bucket")
        family = family.removesuffix("_count").removesuffix("_sum")
        if family in names and not sample.endswith("_created"):
            out.append(line)
    return out


def test_the_exposition_matches_prometheus_client() -> None:
    metrics = InvocationMetrics()
    for endpoint, variant, status, instances, model_us, total_us in CALLS:
        metrics.series(endpoint, variant).record(
            status=status, instances=instances, model_us=model_us, total_us=total_us
        )
    ours = variant_lines(metrics.exposition().decode())
    assert ours == variant_lines(reference())
    assert len(ours) > 100


def test_counters_keep_their_created_time() -> None:
    metrics = InvocationMetrics()
    metrics.series("ep", "Blue").record(status=200, instances=1, model_us=1.0, total_us=2.0)
    text = metrics.exposition().decode()
    assert 'Invocations_created{EndpointName="ep",VariantName="Blue"}' in text
