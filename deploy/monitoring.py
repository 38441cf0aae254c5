"""Alarms, the alarm topic and the dashboard of the stack, built from the same registries as the rest
of the template: every queue of chalicelib/resources.py gets a dead-letter alarm, every function
Chalice makes gets error and throttle alarms, and the dashboard draws every metric of the
catalogue in chalicelib/observability.py. Adding a queue, a function or a metric adds its alarm or
widget; nothing here names one of them by hand except the few alarms on service metrics.

Thresholds, and why:
- a dead-letter queue holding anything: a message failed five deliveries; someone must look.
- any function error or throttle in 5 minutes: handlers report per-record failures, so an error
  is a crash or a timeout; throttles mean the account's concurrency is exhausted.
- PipelineDuration p95 above 60 s for 15 minutes: one file renders in well under a second on the
  benchmarks (docs/benchmarks.md); a minute means storage or the database is struggling.
- API 5xx above 5 % of requests in two of three 5-minute periods.
- any archive build failure (the client would poll a 202 for ever).
"""
from __future__ import annotations

import json
import re

from chalicelib import observability, resources

ALARM_TOPIC = "AlarmTopic"
ALARM_EMAIL = "AlarmEmail"            # stack parameter: who gets the alarms (optional)
HAS_ALARM_EMAIL = "HasAlarmEmail"
DASHBOARD = "Dashboard"
PIPELINE_P95_MS = 60_000
API_5XX_RATE = 0.05
NAMESPACE = observability.NAMESPACE
SERVICE_DIMENSION = [{"Name": "service", "Value": observability.SERVICE}]


def _alarm(description: str, metric: dict, threshold: float, *, period: int = 300, evaluations: int = 1,
           to_alarm: int | None = None) -> dict:
    properties = {
        "AlarmDescription": description,
        **metric,
        "Period": period,
        "EvaluationPeriods": evaluations,
        "Threshold": threshold,
        "ComparisonOperator": "GreaterThanThreshold",
        # no data is no traffic (a DLQ that was never written to has no datapoints): not an alarm
        "TreatMissingData": "notBreaching",
        "AlarmActions": [{"Ref": ALARM_TOPIC}],
        "OKActions": [{"Ref": ALARM_TOPIC}],
    }
    if to_alarm:
        properties["DatapointsToAlarm"] = to_alarm
    return {"Type": "AWS::CloudWatch::Alarm", "Properties": properties}


def dlq_alarm_id(spec: resources.QueueSpec) -> str:
    return f"{spec.dlq_logical_id}DepthAlarm"


def function_alarm_ids(logical_id: str) -> tuple[str, str]:
    return f"{logical_id}ErrorsAlarm", f"{logical_id}ThrottlesAlarm"


PIPELINE_ALARM = "PipelineDurationP95Alarm"
API_5XX_ALARM = "Api5xxRateAlarm"
ARCHIVE_ALARM = "ArchiveBuildFailuresAlarm"


def alarms(functions, api_stage: str | None) -> dict:
    """Every alarm, keyed by logical id. `functions`: deploy.template.Function list."""
    out = {}
    for spec in resources.QUEUES:
        out[dlq_alarm_id(spec)] = _alarm(
            f"{spec.dlq_name} holds messages: {spec.handler} failed them {spec.max_receives} times. Read its "
            f"logs for the message id, fix, then redrive the DLQ (docs/deploy.md, Operations).",
            {"Namespace": "AWS/SQS", "MetricName": "ApproximateNumberOfMessagesVisible", "Statistic": "Maximum",
             "Dimensions": [{"Name": "QueueName", "Value": {"Fn::GetAtt": [spec.dlq_logical_id, "QueueName"]}}]},
            0, period=60)
    for fn in functions:
        errors, throttles = function_alarm_ids(fn.logical_id)
        dimension = [{"Name": "FunctionName", "Value": {"Ref": fn.logical_id}}]
        out[errors] = _alarm(f"{fn.name} raised or timed out (handlers report per-record failures, so this is a "
                             "crash): read its log group for level ERROR.",
                             {"Namespace": "AWS/Lambda", "MetricName": "Errors", "Statistic": "Sum",
                              "Dimensions": dimension}, 0)
        out[throttles] = _alarm(f"{fn.name} was throttled: the account's Lambda concurrency is exhausted.",
                                {"Namespace": "AWS/Lambda", "MetricName": "Throttles", "Statistic": "Sum",
                                 "Dimensions": dimension}, 0)
    out[PIPELINE_ALARM] = _alarm(
        f"95th percentile of one file's processing above {PIPELINE_P95_MS // 1000} s for 15 minutes.",
        {"Namespace": NAMESPACE, "MetricName": observability.PIPELINE_DURATION.name, "ExtendedStatistic": "p95",
         "Dimensions": SERVICE_DIMENSION, "Unit": observability.PIPELINE_DURATION.unit},
        PIPELINE_P95_MS, evaluations=3)
    if api_stage:
        out[API_5XX_ALARM] = _alarm(
            f"More than {API_5XX_RATE:.0%} of API requests answered 5xx in two of the last three 5-minute periods.",
            {"Namespace": "AWS/ApiGateway", "MetricName": "5XXError", "Statistic": "Average",
             "Dimensions": [{"Name": "ApiName", "Value": {"Ref": "AWS::StackName"}},
                            {"Name": "Stage", "Value": api_stage}]},
            API_5XX_RATE, evaluations=3, to_alarm=2)
    out[ARCHIVE_ALARM] = _alarm(
        "An archive build failed: the client keeps polling 202. Read build_archive's or api_handler's "
        "logs for archive.built with outcome error.",
        {"Namespace": NAMESPACE, "MetricName": observability.ARCHIVE_BUILDS_FAILED.name, "Statistic": "Sum",
         "Dimensions": SERVICE_DIMENSION}, 0)
    return out


def alarm_topic() -> dict:
    return {
        "Parameters": {ALARM_EMAIL: {"Type": "String", "Default": "",
                                     "Description": "Email address that gets every alarm (empty: none; "
                                                    "subscribe to the AlarmTopicArn output yourself)"}},
        "Conditions": {HAS_ALARM_EMAIL: {"Fn::Not": [{"Fn::Equals": [{"Ref": ALARM_EMAIL}, ""]}]}},
        "Resources": {
            ALARM_TOPIC: {"Type": "AWS::SNS::Topic", "Properties": {
                "DisplayName": {"Fn::Sub": "${AWS::StackName} alarms"}}},
            "AlarmEmailSubscription": {"Type": "AWS::SNS::Subscription", "Condition": HAS_ALARM_EMAIL, "Properties": {
                "TopicArn": {"Ref": ALARM_TOPIC}, "Protocol": "email", "Endpoint": {"Ref": ALARM_EMAIL}}},
        },
        "Outputs": {"AlarmTopicArn": {"Value": {"Ref": ALARM_TOPIC}}},
    }


# -- the dashboard -----------------------------------------------------------------------------

def _search(spec: observability.MetricSpec, statistic: str) -> dict:
    """Every value of a metric's dimension on one graph, without naming the values."""
    query = (f"{{{NAMESPACE},{spec.dimension},service}} MetricName=\"{spec.name}\"")
    return {"expression": f"SEARCH('{query}', '{statistic}', 300)", "id": "m0", "label": ""}


_STATISTIC = {"Count": "Sum", "Bytes": "Sum", "Milliseconds": "p95", "Seconds": "p95"}


def _metric_widget(title: str, metrics: list, stat: str = "Sum", view: str = "timeSeries") -> dict:
    return {"type": "metric", "width": 12, "height": 6,
            "properties": {"title": title, "region": "${AWS::Region}", "view": view, "stat": stat,
                           "period": 300, "metrics": metrics}}


def dashboard_widgets(functions, api_stage: str | None, alarm_ids: list[str]) -> list[dict]:
    widgets = [{"type": "alarm", "width": 24, "height": 4, "properties": {
        "title": "Alarms", "alarms": ["${%s.Arn}" % a for a in alarm_ids]}}]
    for spec in observability.METRICS:
        stat = _STATISTIC[spec.unit]
        title = f"{spec.name} ({stat}, {spec.unit}): {spec.help}"
        if spec.dimension:
            widgets.append(_metric_widget(f"{title}, by {spec.dimension}", [[_search(spec, stat)]], stat))
        else:
            widgets.append(_metric_widget(title, [[NAMESPACE, spec.name, "service", observability.SERVICE]], stat))
    for spec in resources.QUEUES:
        widgets.append(_metric_widget(f"{spec.name}: backlog, oldest message (s), dead letters", [
            ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", spec.name, {"stat": "Maximum"}],
            ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", spec.name, {"stat": "Maximum", "yAxis": "right"}],
            ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", spec.dlq_name,
             {"stat": "Maximum", "label": spec.dlq_name}],
        ]))
    for name, stat in (("Errors", "Sum"), ("Throttles", "Sum"), ("Duration", "p95"), ("ConcurrentExecutions", "Maximum")):
        widgets.append(_metric_widget(f"Lambda {name} ({stat})", [
            ["AWS/Lambda", name, "FunctionName", "${%s}" % fn.logical_id, {"label": fn.name}] for fn in functions],
            stat))
    if api_stage:
        api = ["ApiName", "${AWS::StackName}", "Stage", api_stage]
        widgets.append(_metric_widget("API requests, 4xx and 5xx (Sum)", [
            ["AWS/ApiGateway", "Count", *api], ["AWS/ApiGateway", "4XXError", *api],
            ["AWS/ApiGateway", "5XXError", *api]]))
        widgets.append(_metric_widget("API latency (p50, p95)", [
            ["AWS/ApiGateway", "Latency", *api, {"stat": "p50"}], ["AWS/ApiGateway", "Latency", *api, {"stat": "p95"}]],
            "p95"))
    for n, widget in enumerate(widgets):   # two columns under the full-width alarm strip
        widget["x"] = 0 if widget["width"] == 24 else (n - 1) % 2 * 12
        widget["y"] = 0 if n == 0 else 4 + (n - 1) // 2 * 6
    return widgets


def dashboard(functions, api_stage: str | None, alarm_ids: list[str]) -> dict:
    body = json.dumps({"widgets": dashboard_widgets(functions, api_stage, alarm_ids)}, separators=(",", ":"))
    known = {"AWS::Region", "AWS::StackName"} | {fn.logical_id for fn in functions} | {f"{a}.Arn" for a in alarm_ids}
    unknown = set(re.findall(r"\$\{([^}]*)\}", body)) - known
    if unknown:
        raise ValueError(f"the dashboard body holds ${{...}} that Fn::Sub cannot resolve: {sorted(unknown)}")
    return {"Type": "AWS::CloudWatch::Dashboard", "Properties": {
        "DashboardName": {"Fn::Sub": "${AWS::StackName}"}, "DashboardBody": {"Fn::Sub": body}}}
