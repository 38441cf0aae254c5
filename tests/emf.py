"""Reading what the functions print: JSON log lines and CloudWatch embedded metric format documents.

The EMF checks follow the specification (CloudWatch_Embedded_Metric_Format_Specification): a
root `_aws` with an integer millisecond `Timestamp` and `CloudWatchMetrics` directives, each
naming a `Namespace`, `Dimensions` (lists of at most 30 keys, each a string member of the
root) and `Metrics` (`Name`, `Unit`), each a root member holding a number or at most 100 numbers.
"""
from __future__ import annotations

import json
from collections import defaultdict
from numbers import Number

UNITS = {"Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes",
         "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count", "Bytes/Second",
         "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second", "Bits/Second",
         "Kilobits/Second", "Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None"}


def json_lines(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def emf_documents(text: str) -> list[dict]:
    docs = [d for d in json_lines(text) if "_aws" in d]
    for d in docs:
        check_emf(d)
    return docs


def log_records(text: str) -> list[dict]:
    return [d for d in json_lines(text) if "_aws" not in d and "message" in d]


def check_emf(doc: dict) -> None:
    meta = doc["_aws"]
    assert isinstance(meta["Timestamp"], int) and meta["Timestamp"] > 1_600_000_000_000, meta
    assert meta["CloudWatchMetrics"], meta
    for directive in meta["CloudWatchMetrics"]:
        assert isinstance(directive["Namespace"], str) and directive["Namespace"], directive
        for dimension_set in directive["Dimensions"]:
            assert 0 < len(dimension_set) <= 30, dimension_set
            for key in dimension_set:
                assert isinstance(doc[key], str), (key, doc)
        for metric in directive["Metrics"]:
            assert metric["Unit"] in UNITS, metric
            value = doc[metric["Name"]]
            values = value if isinstance(value, list) else [value]
            assert 0 < len(values) <= 100 and all(isinstance(v, Number) for v in values), (metric, value)


def totals(docs: list[dict], namespace: str = "imgbatch") -> dict[tuple, float]:
    """(metric name, ((dimension, value), ...)) -> the sum of its values, and the unit per name."""
    out: dict[tuple, float] = defaultdict(float)
    for doc in docs:
        for directive in doc["_aws"]["CloudWatchMetrics"]:
            if directive["Namespace"] != namespace:
                continue
            for dimension_set in directive["Dimensions"]:
                dims = tuple(sorted((k, doc[k]) for k in dimension_set if k != "service"))
                for metric in directive["Metrics"]:
                    value = doc[metric["Name"]]
                    out[(metric["Name"], dims)] += sum(value) if isinstance(value, list) else value
    return dict(out)


def units(docs: list[dict]) -> dict[str, str]:
    return {m["Name"]: m["Unit"] for d in docs for directive in d["_aws"]["CloudWatchMetrics"]
            for m in directive["Metrics"]}
