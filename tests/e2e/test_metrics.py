"""GET /metrics: Prometheus text exposition 0.0.4 that parses, and per-request counters
that move by exactly the requests made."""
import math
import re
import uuid

from conftest import wait_until

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

METRIC_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL_NAME = r"[a-zA-Z_][a-zA-Z0-9_]*"
LABEL_VALUE = r'"(?:[^"\\\n]|\\[\\"n])*"'
LABEL_PAIR = rf"({LABEL_NAME})=({LABEL_VALUE})"
LABELS = rf"\{{(?:{LABEL_NAME}={LABEL_VALUE}(?:,{LABEL_NAME}={LABEL_VALUE})*,?)?\}}"
FLOAT = r"[+-]?(?:Inf|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)|NaN"
SAMPLE_RE = re.compile(rf"^({METRIC_NAME})({LABELS})? ({FLOAT})(?: -?\d+)?$")
HELP_RE = re.compile(rf"^# HELP ({METRIC_NAME})(?: (.*))?$")
TYPE_RE = re.compile(rf"^# TYPE ({METRIC_NAME}) (counter|gauge|histogram|summary|untyped)$")

SPEC_FAMILIES = {
    "http_requests_total": "counter",
    "http_request_duration_seconds": "histogram",
    "tasks_submitted_total": "counter",
    "idempotent_replays_total": "counter",
    "kafka_produce_failures_total": "counter",
    "outbox_republished_total": "counter",
    "rate_limited_total": "counter",
    "process_start_time_seconds": "gauge",
}


def _unescape(quoted):
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), quoted[1:-1])


def _family_of(name, types):
    """The family a sample belongs to: itself, or a histogram's _bucket/_sum/_count."""
    if name in types:
        return name
    for suffix in ("_bucket", "_sum", "_count"):
        base = name[: -len(suffix)]
        if name.endswith(suffix) and types.get(base) in ("histogram", "summary"):
            return base
    return None


def parse(text):
    """Checks text against the 0.0.4 grammar; returns (types, samples) where samples
    is a list of (name, labels dict, value).  Every sample's family must have had its
    HELP and TYPE lines before it, each once."""
    assert text.endswith("\n"), "the exposition ends with a newline"
    helps, types, samples = {}, {}, []
    for n, line in enumerate(text[:-1].split("\n"), 1):
        if m := HELP_RE.match(line):
            assert m.group(1) not in helps, f"line {n}: second HELP for {m.group(1)}"
            helps[m.group(1)] = m.group(2) or ""
        elif m := TYPE_RE.match(line):
            assert m.group(1) not in types, f"line {n}: second TYPE for {m.group(1)}"
            types[m.group(1)] = m.group(2)
        elif m := SAMPLE_RE.match(line):
            name, labels, value = m.group(1), m.group(2) or "", m.group(3)
            family = _family_of(name, types)
            assert family, f"line {n}: sample {name} without a TYPE before it"
            assert family in helps, f"line {n}: sample {name} without a HELP before it"
            pairs = {k: _unescape(v) for k, v in re.findall(LABEL_PAIR, labels)}
            samples.append((name, pairs, float(value)))
        else:
            raise AssertionError(f"line {n} is not exposition format 0.0.4: {line!r}")
    assert set(helps) == set(types), "every family has both HELP and TYPE"
    return types, samples


def check_histograms(types, samples):
    """Buckets are cumulative, end with le="+Inf", and that bucket equals _count."""
    for family, kind in types.items():
        if kind != "histogram":
            continue
        series = {}
        for name, labels, value in samples:
            if name == family + "_bucket":
                key = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
                series.setdefault(key, []).append((float(labels["le"]), value))
        for key, buckets in series.items():
            bounds = [b for b, _ in buckets]
            counts = [c for _, c in buckets]
            assert bounds == sorted(bounds) and bounds[-1] == math.inf, (family, key, bounds)
            assert counts == sorted(counts), f"{family}{key}: buckets not cumulative"
            count = value_of(samples, family + "_count", **dict(key))
            assert counts[-1] == count, f"{family}{key}: +Inf bucket != _count"


def value_of(samples, name, **labels):
    for n, lbls, value in samples:
        if n == name and lbls == labels:
            return value
    return 0.0


def scrape(client):
    r = client.get("/metrics")
    assert r.status == 200, r.body
    assert r.headers["Content-Type"] == CONTENT_TYPE
    types, samples = parse(r.body.decode("utf-8"))
    check_histograms(types, samples)
    return types, samples


def test_metrics_parses_and_names_the_spec_families(anonymous):
    types, samples = scrape(anonymous)
    for family, kind in SPEC_FAMILIES.items():
        assert types.get(family) == kind, f"{family} should be a {kind}"
    assert value_of(samples, "process_start_time_seconds") > 1.6e9


def test_request_counters_move_by_exactly_the_requests_made(anonymous):
    missing_task = f"/tasks/{uuid.uuid4()}"
    expected = {  # (route, method, code) -> requests made below
        ("healthz", "GET", "200"): 3,
        ("tasks_get", "GET", "401"): 2,
        ("unmatched", "GET", "404"): 1,
        ("unmatched", "POST", "405"): 1,
    }
    expected_durations = {"healthz": 3, "tasks_get": 2, "unmatched": 2}

    _, before = scrape(anonymous)
    for _ in range(3):
        assert anonymous.get("/healthz").status == 200
    for _ in range(2):
        assert anonymous.get(missing_task).status == 401  # no token
    assert anonymous.get("/no/such/route").status == 404
    assert anonymous.post("/healthz", raw=b"").status == 405

    def deltas():
        _, after = scrape(anonymous)
        counts = {key: value_of(after, "http_requests_total",
                                route=key[0], method=key[1], code=key[2])
                  - value_of(before, "http_requests_total",
                             route=key[0], method=key[1], code=key[2])
                  for key in expected}
        durations = {route: value_of(after, "http_request_duration_seconds_count", route=route)
                     - value_of(before, "http_request_duration_seconds_count", route=route)
                     for route in expected_durations}
        return after, counts, durations

    # a request is counted when the server finishes it, which can trail the client's
    # read of the response by a moment: wait until every count got there, then
    # require it exactly
    def reached():
        after, counts, durations = deltas()
        done = all(counts[k] >= v for k, v in expected.items()) and all(
            durations[r] >= v for r, v in expected_durations.items())
        return (after, counts, durations) if done else None

    after, counts, durations = wait_until(reached, 5, "the request counters")
    assert counts == {k: float(v) for k, v in expected.items()}
    assert durations == {r: float(v) for r, v in expected_durations.items()}
    for route in expected_durations:
        assert (value_of(after, "http_request_duration_seconds_sum", route=route)
                > value_of(before, "http_request_duration_seconds_sum", route=route))
    # the scrapes themselves are counted under their own route
    assert value_of(after, "http_requests_total", route="metrics", method="GET", code="200") >= 1
