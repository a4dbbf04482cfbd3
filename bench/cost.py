"""``cost_per_1k_searches_usd`` and ``max_fixed_cost_share``: the default stack's bill at 100,000 searches a day.

Every count comes from ``template.yaml`` under its default parameters (functions and their memory,
alarms and their metrics, dashboards, secrets, KMS keys, log groups and retention, the cache's kind,
the API's methods and stage settings, the X-Ray sampling rule, queues and pipes); every rate from
``bench/prices.json`` (list prices with their source and date, and the few modelling assumptions with
their reasons); every per-request quantity from the other benchmarks (hit ratio of the replayed day,
bytes the handler writes per invocation, response and cached value sizes, CPU per hit and miss) or
from the data the stack serves (the seeded items a Query returns). The month is 30 days: 3,000,000
searches, so the figure is the monthly total ÷ 3,000.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import fixtures
from bench.results import Figure
from local.template import load_template

PRICES = Path(__file__).resolve().parent / "prices.json"
REPO = Path(__file__).resolve().parent.parent
SEARCHES_PER_DAY = 100_000
COST_GOAL = 0.02
SHARE_GOAL = 0.5


@dataclass
class Line:
    name: str
    monthly_usd: float
    fixed: bool  # does not grow with searches
    basis: str  # how it was counted


class Template:
    """The template under its default parameters."""

    def __init__(self) -> None:
        self.document = load_template()
        self.parameters = {name: spec.get("Default") for name, spec in self.document["Parameters"].items()}
        self.resources = self.document["Resources"]
        conditions = {
            "IsProvisionedBilling": self.parameters["TableBillingMode"] == "PROVISIONED",
            "HasAlarmEmail": bool(self.parameters.get("AlarmEmail")),
        }
        self.resources = {
            logical_id: resource
            for logical_id, resource in self.resources.items()
            if conditions.get(resource.get("Condition", ""), True)
        }

    def value(self, value: Any) -> Any:
        if isinstance(value, dict) and set(value) == {"Ref"} and value["Ref"] in self.parameters:
            return self.parameters[value["Ref"]]
        return value

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {key: res for key, res in self.resources.items() if res["Type"] == resource_type}

    def count(self, resource_type: str) -> int:
        return len(self.of_type(resource_type))


def _alarm_metrics(alarm: dict[str, Any]) -> int:
    """Billed alarm metrics: one per metric an alarm reads (a metric-math alarm reads several)."""
    metrics = alarm["Properties"].get("Metrics")
    if not metrics:
        return 1
    return sum(1 for metric in metrics if "MetricStat" in metric) or 1


def _emitted_metric_names(path: Path) -> set[str]:
    return set(re.findall(r"""\.count\(\s*["']([A-Za-z]+)["']""", path.read_text(encoding="utf-8")))


def _platform_lines_bytes(memory_mb: int) -> int:
    """Bytes of the JSON platform records Lambda writes per invocation (LogFormat: JSON, tracing on)."""
    request_id = str(uuid.uuid4())
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    trace = f"Root=1-6748a1b2-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]};Sampled=0;Lineage=1:8a3f2b1c:0"
    tracing = {"spanId": uuid.uuid4().hex[:16], "type": "X-Amzn-Trace-Id", "value": trace}
    start = {
        "time": now,
        "type": "platform.start",
        "record": {"requestId": request_id, "version": "$LATEST", "tracing": tracing},
    }
    report = {
        "time": now,
        "type": "platform.report",
        "record": {
            "requestId": request_id,
            "metrics": {"durationMs": 3.142, "billedDurationMs": 4, "memorySizeMB": memory_mb, "maxMemoryUsedMB": 92},
            "tracing": tracing,
            "status": "success",
        },
    }
    return sum(len(json.dumps(line, separators=(",", ":"))) for line in (start, report))


def _access_log_bytes(template: Template) -> int:
    """One API access log line: the stage's Format with a typical request's values."""
    stage = next(iter(template.of_type("AWS::ApiGateway::Stage").values()))["Properties"]
    line = stage["AccessLogSetting"]["Format"]
    values = {
        "requestId": str(uuid.uuid4()), "identity.sourceIp": "203.0.113.24", "identity.caller": "-",
        "identity.apiKeyId": "k1l2m3n4o5", "requestTime": "28/Nov/2026:14:00:00 +0000", "httpMethod": "GET",
        "resourcePath": "/v1/flights/search", "status": "200", "responseLength": "1100", "responseLatency": "12",
        "integrationLatency": "9", "error.message": "-", "integration.error": "-",
        "xrayTraceId": "1-6748a1b2-0123456789abcdef01234567",
    }  # fmt: skip
    rendered = re.sub(r"\$context\.([A-Za-z.]+)", lambda m: values.get(m.group(1), "-"), line)
    return len(rendered.encode())


def _traces_per_day(search_times: list[float], fixed_rate: float, reservoir: int) -> float:
    """Expected traces: the reservoir's first ``reservoir`` requests of each second, then ``fixed_rate`` of the rest."""
    per_second = Counter(int(moment) for moment in search_times)
    return sum(min(count, reservoir) + fixed_rate * max(0, count - reservoir) for count in per_second.values())


def _dynamodb_item_bytes(item: dict[str, dict[str, Any]]) -> int:
    """DynamoDB's item size: attribute names plus values (numbers ~ digits/2 + 1)."""
    size = 0
    for name, value in item.items():
        size += len(name.encode())
        kind, raw = next(iter(value.items()))
        size += len(str(raw).encode()) if kind == "S" else math.ceil(len(str(raw).lstrip("-").replace(".", "")) / 2) + 1
    return size


def model(measured: dict[str, Any]) -> tuple[list[Line], dict[str, Any]]:
    """The month's bill, line by line, from the template, the prices and the measured inputs."""
    prices_doc = json.loads(PRICES.read_text(encoding="utf-8"))
    price = {name: spec["value"] for name, spec in prices_doc["prices"].items()}
    assume = {name: spec["value"] for name, spec in prices_doc["assumptions"].items()}
    template = Template()
    days = assume["days_per_month"]
    hours = days * 24
    searches = SEARCHES_PER_DAY * days
    hit_ratio = measured["hit_ratio"]
    misses = searches * (1 - hit_ratio)
    lines: list[Line] = []

    def add(name: str, usd: float, fixed: bool, basis: str) -> None:
        lines.append(Line(name, usd, fixed, basis))

    # --- cache
    cache = next(iter(template.of_type("AWS::ElastiCache::ServerlessCache").values()))["Properties"]
    engine = cache.get("Engine", "redis")
    min_gb = price[f"elasticache_serverless_{engine}_min_storage_gb"]
    stored_gb = measured["mean_stored_bytes"] / 1e9
    rate = price[f"elasticache_serverless_{engine}_gb_hour"]
    add(
        f"ElastiCache Serverless ({engine}) storage",
        max(min_gb, stored_gb) * hours * rate,
        True,
        f"max(minimum {min_gb} GB, measured mean {stored_gb * 1000:.1f} MB) x {hours} h x ${rate}/GB-h",
    )
    value_kb = measured["stored_value_bytes"] / 1024
    script = assume["ecpu_per_script_command"]
    # Upper bounds: a hit of an entry the container last read as a hit is a plain MGET (no script), and only
    # a miss of such an entry pays that MGET before the read script.
    read_ecpu = max(1, math.ceil(value_kb))  # what reading the entry costs, script or not
    hit_ecpu = read_ecpu + script  # the read script returns the entry
    miss_ecpu = read_ecpu + hit_ecpu + math.ceil(value_kb) + script  # MGET, the read script, the fenced write
    ecpus = searches * (hit_ratio * hit_ecpu + (1 - hit_ratio) * miss_ecpu)
    add(
        "ElastiCache ECPUs",
        ecpus * price["elasticache_serverless_valkey_ecpu"],
        False,
        f"at most {hit_ecpu} ECPU per hit (the read script, a {value_kb:.1f} KB entry), "
        f"{miss_ecpu} per miss (an MGET, the read script taking the lock, the write script)",
    )

    # --- API Gateway
    pushes = assume["partner_pushes_per_day"] * days
    add(
        "API Gateway REST requests",
        (searches + pushes) * price["api_gateway_rest_request"],
        False,
        f"{searches:,} searches + {pushes:,} partner pushes",
    )
    stage = next(iter(template.of_type("AWS::ApiGateway::Stage").values()))["Properties"]
    detailed = any(setting.get("MetricsEnabled") for setting in stage.get("MethodSettings", []))
    api = next(iter(template.of_type("AWS::ApiGateway::RestApi").values()))["Properties"]["Body"]
    methods = sum(
        len([m for m in spec if m in ("get", "post", "put", "delete", "patch")]) for spec in api["paths"].values()
    )
    if detailed:
        count = methods * assume["api_gateway_detailed_metrics_per_method"]
        add(
            "API Gateway detailed metrics (custom metrics)",
            count * price["cloudwatch_custom_metric"],
            True,
            f"MetricsEnabled: {methods} methods x {assume['api_gateway_detailed_metrics_per_method']} metrics",
        )
    response_bytes = measured["response_body_bytes"] + assume["response_header_bytes"]
    add(
        "Data transfer out (responses)",
        searches * response_bytes / 1e9 * price["data_transfer_out_gb"],
        False,
        f"{response_bytes} bytes per search response",
    )

    # --- Lambda
    functions = template.of_type("AWS::Lambda::Function")
    memory = {key: int(template.value(fn["Properties"].get("MemorySize", 128))) for key, fn in functions.items()}
    search_functions = [key for key in functions if key.endswith("SearchFunction")]
    search_mb = sum(memory[key] for key in search_functions) / len(search_functions)
    scale = assume["lambda_full_vcpu_mb"] / search_mb
    rtt, query_ms = assume["cache_round_trip_ms"], assume["dynamodb_query_ms"]
    hit_ms = math.ceil(measured["hit_cpu_ms"] * scale + rtt)
    miss_ms = math.ceil(measured["miss_cpu_ms"] * scale + 4 * rtt + query_ms)
    ingest_invocations = pushes  # one SQS batch per event at this rate (1 s batching window)
    other_invocations = pushes + days * 24 * 4  # partner push function + the 15-minute refresh
    add(
        "Lambda requests",
        (searches + ingest_invocations + other_invocations) * price["lambda_request"],
        False,
        f"{searches:,} searches, {ingest_invocations:,} ingest batches, {other_invocations:,} push + refresh",
    )
    gb_seconds = searches * (hit_ratio * hit_ms + (1 - hit_ratio) * miss_ms) / 1000 * search_mb / 1024
    ingest_ms = math.ceil(measured["ingest_cpu_ms_per_record"] * assume["lambda_full_vcpu_mb"] / 512 + 4 * query_ms)
    gb_seconds += ingest_invocations * ingest_ms / 1000 * 512 / 1024
    cold = len(functions) * assume["cold_starts_per_function_per_hour"] * hours
    gb_seconds += cold * measured["cold_init_ms"] * scale / 1000 * search_mb / 1024
    add(
        "Lambda duration (arm64)",
        gb_seconds * price["lambda_arm64_gb_second"],
        False,
        f"hit {hit_ms} ms, miss {miss_ms} ms billed at {search_mb:.0f} MB (CPU x {scale:.2f} + waits); "
        f"ingest {ingest_ms} ms; {cold:.0f} cold starts",
    )

    # --- DynamoDB
    item_bytes = measured["query_items_bytes"]
    rru = math.ceil(item_bytes / 4096) * 0.5
    add(
        "DynamoDB reads (Query on misses)",
        misses * rru * price["dynamodb_read_request_unit"],
        False,
        f"{misses:,.0f} misses x {rru} RRU ({item_bytes} bytes of items, eventually consistent)",
    )
    # One UpdateItem per event (its offers are attributes of one item), charged on the item's size.
    wru = math.ceil(measured["flight_item_bytes"] / 1024)
    add(
        "DynamoDB writes (one conditional UpdateItem per event)",
        pushes * wru * price["dynamodb_write_request_unit"],
        False,
        f"{pushes:,} item writes x {wru} WRU ({measured['offers_per_event']:.1f} offers an event, "
        f"items up to {measured['flight_item_bytes']} bytes)",
    )
    tables = template.count("AWS::DynamoDB::Table")
    storage_gb = measured["table_bytes"] / 1e9
    add(
        "DynamoDB storage + PITR",
        storage_gb * (price["dynamodb_storage_gb_month"] + price["dynamodb_pitr_gb_month"]),
        True,
        f"{storage_gb * 1000:.0f} MB of seeded flight offers (the other tables are smaller)",
    )
    pipes = template.count("AWS::Pipes::Pipe")
    polls = pipes * assume["pipes_stream_polls_per_second_per_shard"] * hours * 3600
    add(
        "DynamoDB Streams reads by Pipes",
        polls * price["dynamodb_streams_read_request_unit"],
        True,
        f"{pipes} pipes x {assume['pipes_stream_polls_per_second_per_shard']} GetRecords/s",
    )
    add(
        "EventBridge Pipes + change events",
        pushes * (price["eventbridge_pipes_request"] + price["eventbridge_custom_event"]),
        False,
        "one FlightOffersChanged per item written",
    )

    # --- events and queues
    add(
        "EventBridge partner events + archive",
        pushes * price["eventbridge_custom_event"]
        + pushes * 2500 / 1e9 * price["eventbridge_archive_gb"]
        + days * 96 * price["eventbridge_scheduler_invocation"],
        False,
        f"{pushes:,} PutEvents entries (archived), {days * 96} schedules",
    )
    queues = template.count("AWS::Lambda::EventSourceMapping")
    idle = queues * assume["sqs_idle_pollers_per_queue"] * 3 * 60 * hours
    add(
        "SQS long polling by ingest pollers",
        idle * price["sqs_request"],
        True,
        f"{queues} queues x {assume['sqs_idle_pollers_per_queue']} pollers x 3 ReceiveMessage/min",
    )
    add("SQS messages", pushes * 3 * price["sqs_request"], False, "send, receive, delete per event")

    # --- CloudWatch
    alarms = template.of_type("AWS::CloudWatch::Alarm")
    alarm_metrics = sum(_alarm_metrics(alarm) for alarm in alarms.values())
    add(
        "CloudWatch alarms",
        alarm_metrics * price["cloudwatch_alarm_metric"],
        True,
        f"{len(alarms)} alarms reading {alarm_metrics} metrics",
    )
    dashboards = template.count("AWS::CloudWatch::Dashboard")
    add("CloudWatch dashboards", dashboards * price["cloudwatch_dashboard"], True, f"{dashboards} dashboard")
    ingest_functions = [key for key in functions if key.endswith("IngestFunction")]
    refresh_names = _emitted_metric_names(REPO / "integrations" / "provider_refresh.py")
    emf = (
        len(search_functions) * len(measured["search_metric_names"])
        + len(ingest_functions) * len(measured["ingest_metric_names"])
        + len(refresh_names)
    )
    add(
        "CloudWatch custom metrics (EMF)",
        emf * price["cloudwatch_custom_metric"],
        True,
        f"{len(search_functions)} search x {sorted(measured['search_metric_names'])}, {len(ingest_functions)} ingest x "
        f"{sorted(measured['ingest_metric_names'])}, refresh {sorted(refresh_names)}",
    )
    overhead = assume["cloudwatch_logs_event_overhead_bytes"]
    platform = _platform_lines_bytes(int(search_mb)) + 2 * overhead
    hit_log = measured["stdout_bytes_per_hit"] + overhead + platform
    miss_log = measured["stdout_bytes_per_miss"] + overhead + platform
    access = _access_log_bytes(template) + overhead
    log_bytes = searches * (hit_ratio * hit_log + (1 - hit_ratio) * miss_log + access)
    log_bytes += (ingest_invocations + other_invocations) * (platform + 400)
    flow = template.count("AWS::EC2::FlowLog")
    vpc_functions = sum(1 for fn in functions.values() if fn["Properties"].get("VpcConfig"))
    flow_bytes = (
        flow
        * vpc_functions
        * assume["flow_log_records_per_function_per_interval"]
        * (hours * 6)
        * assume["flow_log_record_bytes"]
    )
    add(
        "CloudWatch Logs ingestion",
        (log_bytes + flow_bytes) / 1e9 * price["cloudwatch_logs_ingestion_gb"],
        False,
        f"per search: {hit_log} B on a hit, {miss_log} B on a miss (handler {measured['stdout_bytes_per_hit']} B + "
        f"platform {platform} B) + access log {access} B; VPC flow logs {flow_bytes / 1e6:.1f} MB",
    )
    groups = template.of_type("AWS::Logs::LogGroup")
    retention = max(int(template.value(g["Properties"].get("RetentionInDays", 3653))) for g in groups.values())
    stored_months = min(retention, days) / days
    add(
        "CloudWatch Logs storage",
        (log_bytes + flow_bytes) / 1e9 * stored_months * price["cloudwatch_logs_storage_gb_month"],
        False,
        f"{len(groups)} log groups, {retention}-day retention (uncompressed, an upper bound)",
    )
    rule = next(iter(template.of_type("AWS::XRay::SamplingRule").values()))["Properties"]["SamplingRule"]
    traces = _traces_per_day(measured["search_times"], float(rule["FixedRate"]), int(rule["ReservoirSize"])) * days
    add(
        "X-Ray traces",
        traces * price["xray_trace_recorded"],
        False,
        f"sampling rule: {rule['ReservoirSize']}/s reservoir + {rule['FixedRate']:.0%} of the rest on the day's "
        f"arrivals: {traces / searches:.1%} of searches traced",
    )

    # --- keys and secrets
    keys = template.of_type("AWS::KMS::Key")
    add("KMS keys", len(keys) * price["kms_key_month"], True, f"{len(keys)} customer managed key")
    secrets = template.count("AWS::SecretsManager::Secret")
    add("Secrets Manager", secrets * price["secrets_manager_secret_month"], True, f"{secrets} secrets")

    inputs = {
        "searches_per_month": searches,
        "hit_ratio": hit_ratio,
        "tables": tables,
        "functions": memory,
        "log_bytes_per_search_hit": hit_log,
        "traces_per_month": traces,
    }
    return lines, inputs


def measure(measured: dict[str, Any]) -> tuple[Figure, Figure]:
    lines, inputs = model(measured)
    total = sum(line.monthly_usd for line in lines)
    fixed = [line for line in lines if line.fixed]
    largest = max(fixed, key=lambda line: line.monthly_usd)
    breakdown = [
        {"component": line.name, "monthly_usd": round(line.monthly_usd, 4), "fixed": line.fixed, "basis": line.basis}
        for line in sorted(lines, key=lambda line: -line.monthly_usd)
    ]
    details = {
        "monthly_total_usd": total,
        "fixed_monthly_usd": sum(line.monthly_usd for line in fixed),
        "breakdown": breakdown,
        "inputs": {key: value for key, value in measured.items() if key != "search_times"} | inputs,
    }
    per_1k = total / (inputs["searches_per_month"] / 1000)
    return (
        Figure("cost_per_1k_searches_usd", per_1k, COST_GOAL, "USD per 1,000 searches", [per_1k], details=details),
        Figure(
            "max_fixed_cost_share",
            largest.monthly_usd / total,
            SHARE_GOAL,
            "share of the monthly total",
            [largest.monthly_usd / total],
            details={
                "largest_fixed_component": largest.name,
                "largest_fixed_usd": largest.monthly_usd,
                "total_usd": total,
            },
        ),
    )


def seeded_table_bytes() -> tuple[int, int, int]:
    """(bytes of all seeded flight items, bytes of the largest one, bytes a day's Query returns)."""
    from bench.hit_ratio import seeded_day
    from domains.flights.offers import offers_to_items

    day = seeded_day()
    sizes = [_dynamodb_item_bytes(item) for offers in day.offers.values() for item in offers_to_items(offers)]
    one_day = fixtures.query_response(next(iter(day.offers.values())))["Items"]
    return sum(sizes) + 100 * len(sizes), max(sizes), sum(_dynamodb_item_bytes(item) for item in one_day)
