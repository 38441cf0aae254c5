"""Teach moto's CloudFormation the properties real CloudFormation applies and moto 5.2 ignores.

moto's CloudFormation creates tables, buckets, queues, functions and roles, but silently drops
some properties this stack relies on, and cannot create a REST API from a Swagger body. Without
these patches `create_stack` would either fail (the API Deployment finds no methods) or succeed
while skipping what we most want to check. Each patch hands the template's property to moto's
own API implementation (the same code that answers boto3 calls), so moto still validates it:

- AWS::DynamoDB::Table   TimeToLiveSpecification   -> UpdateTimeToLive
- AWS::Lambda::Function  TracingConfig -> the function's tracing mode (moto's function has one and
                         reports it; neither its CloudFormation reader nor UpdateFunctionConfiguration
                         sets it)
- AWS::S3::Bucket        CorsConfiguration, LifecycleConfiguration, NotificationConfiguration,
                         PublicAccessBlockConfiguration -> the Put* bucket calls
- AWS::ApiGateway::RestApi  Name defaults to the body's title; the Swagger body's paths and
                         methods become resources/methods (so the Deployment can be created);
                         x-amazon-apigateway-gateway-responses become gateway responses
- AWS::SQS::QueuePolicy  (no moto support at all) -> SetQueueAttributes(Policy)
- AWS::SecretsManager::Secret (no moto support) -> GetRandomPassword + CreateSecret; its Ref is
                         the ARN, as in AWS
- AWS::CloudWatch::Alarm (no moto support) -> PutMetricAlarm (DeleteAlarms on delete); Ref is
                         the name, Fn::GetAtt Arn the ARN, as in AWS
- AWS::SNS::Subscription (no moto support) -> Subscribe (Unsubscribe on delete)
- the SAM transform (`Transform: AWS::Serverless-2016-10-31`), which CloudFormation expands
                         server-side and moto ignores -> aws-sam-translator, as the tests already
                         translate (deploy_support.translate), for stacks and change sets alike
- a resource moto cannot create (AWS::ApiGateway::Stage) sits in the stack as None and breaks
                         DescribeStackResource(s) -> left out of those answers
- executing a change set applies its resources but leaves the stack's outputs and parameters
                         as they were (moto 5.2; a CREATE change set's stack had none) -> both
                         follow the change set, as update_stack already does
- dynamic references `{{resolve:secretsmanager:<id>:SecretString}}` in resource properties
                         (moto leaves them as text) -> GetSecretValue, as CloudFormation resolves
                         them when it creates the resource

The translation from CloudFormation spelling back to the API spelling is written here
independently of deploy/template.py, so a wrong mapping there shows up as a mismatch.
"""
from __future__ import annotations

import json
import re

import boto3

_installed = False
_SECRET_REFERENCE = re.compile(r"\{\{resolve:secretsmanager:(?P<id>.+?):SecretString(?P<rest>:[^}]*)?\}\}")


def _client(service: str, region: str):
    return boto3.client(service, region_name=region, aws_access_key_id="testing", aws_secret_access_key="testing")


def api_cors(rules: list[dict]) -> list[dict]:
    names = {"Id": "ID", "ExposedHeaders": "ExposeHeaders", "MaxAge": "MaxAgeSeconds"}
    return [{names.get(k, k): v for k, v in rule.items()} for rule in rules]


def api_lifecycle(rules: list[dict]) -> list[dict]:
    out = []
    for rule in rules:
        api = {"ID": rule["Id"], "Status": rule["Status"], "Filter": {"Prefix": rule.get("Prefix", "")}}
        if "ExpirationInDays" in rule:
            api["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
        if "AbortIncompleteMultipartUpload" in rule:
            api["AbortIncompleteMultipartUpload"] = {
                "DaysAfterInitiation": int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])}
        unknown = set(rule) - {"Id", "Status", "Prefix", "ExpirationInDays", "AbortIncompleteMultipartUpload"}
        assert not unknown, f"unmapped lifecycle properties {unknown}"
        out.append(api)
    return out


def api_notifications(config: dict) -> dict:
    queues = []
    for n, entry in enumerate(config.get("QueueConfigurations", [])):
        api = {"Id": f"cfn-{n}", "QueueArn": entry["Queue"], "Events": [entry["Event"]]}
        rules = entry.get("Filter", {}).get("S3Key", {}).get("Rules")
        if rules:
            api["Filter"] = {"Key": {"FilterRules": [{"Name": r["Name"], "Value": r["Value"]} for r in rules]}}
        queues.append(api)
    return {"QueueConfigurations": queues}


def install() -> None:
    global _installed
    if _installed:
        return
    from moto.apigateway.models import RestAPI, apigateway_backends
    from moto.cloudformation import parsing
    from moto.core.common_models import CloudFormationModel
    from moto.dynamodb.models.table import Table
    from moto.s3.models import FakeBucket

    table_create = Table.create_from_cloudformation_json.__func__

    def create_table(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        table = table_create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        ttl = cloudformation_json["Properties"].get("TimeToLiveSpecification")
        if ttl:
            _client("dynamodb", region_name).update_time_to_live(
                TableName=table.name, TimeToLiveSpecification={
                    "AttributeName": ttl["AttributeName"], "Enabled": bool(ttl["Enabled"])})
        return table

    Table.create_from_cloudformation_json = classmethod(create_table)

    bucket_create = FakeBucket.create_from_cloudformation_json.__func__

    def create_bucket(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        bucket = bucket_create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        props = cloudformation_json.get("Properties", {})
        s3 = _client("s3", region_name)
        if "CorsConfiguration" in props:
            s3.put_bucket_cors(Bucket=bucket.name, CORSConfiguration={
                "CORSRules": api_cors(props["CorsConfiguration"]["CorsRules"])})
        if "LifecycleConfiguration" in props:
            s3.put_bucket_lifecycle_configuration(Bucket=bucket.name, LifecycleConfiguration={
                "Rules": api_lifecycle(props["LifecycleConfiguration"]["Rules"])})
        if "NotificationConfiguration" in props:
            s3.put_bucket_notification_configuration(
                Bucket=bucket.name, NotificationConfiguration=api_notifications(props["NotificationConfiguration"]))
        if "PublicAccessBlockConfiguration" in props:
            s3.put_public_access_block(Bucket=bucket.name,
                                       PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"])
        return bucket

    FakeBucket.create_from_cloudformation_json = classmethod(create_bucket)

    def create_rest_api(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        props = cloudformation_json["Properties"]
        body = props.get("Body") or {}
        backend = apigateway_backends[account_id][region_name]
        api = backend.create_rest_api(name=props.get("Name") or body.get("info", {}).get("title"),
                                      description=props.get("Description", ""),
                                      endpoint_configuration=props.get("EndpointConfiguration"))
        for path, operations in sorted(body.get("paths", {}).items()):
            parent = api.default
            for part in [p for p in path.split("/") if p]:
                child = next((r for r in api.resources.values()
                              if r.parent_id == parent.id and r.path_part == part), None)
                parent = child or backend.create_resource(api.id, parent.id, part)
            for method, operation in operations.items():
                if method.startswith("x-"):
                    continue
                auth = "CUSTOM" if operation.get("security") else "NONE"
                backend.put_method(api.id, parent.id, method.upper(), auth)
                integration = operation.get("x-amazon-apigateway-integration")
                if integration:
                    backend.put_integration(api.id, parent.id, method.upper(), integration["type"].upper(),
                                            str(integration.get("uri")), integration.get("httpMethod", "POST"))
        for response_type, response in body.get("x-amazon-apigateway-gateway-responses", {}).items():
            api.put_gateway_response(response_type, response.get("statusCode"),
                                     response.get("responseParameters", {}), response.get("responseTemplates", {}))
        return api

    RestAPI.create_from_cloudformation_json = classmethod(create_rest_api)

    from moto.awslambda.models import LambdaFunction
    function_create = LambdaFunction.create_from_cloudformation_json.__func__

    def create_function(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        function = function_create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        tracing = cloudformation_json["Properties"].get("TracingConfig")
        if tracing:
            assert set(tracing) == {"Mode"} and tracing["Mode"] in ("Active", "PassThrough"), tracing
            function.tracing_config = {"Mode": tracing["Mode"]}
        return function

    LambdaFunction.create_from_cloudformation_json = classmethod(create_function)

    class QueuePolicy(CloudFormationModel):
        __module__ = "moto.sqs.cfn_queue_policy"  # moto's model registry keys models by service

        def __init__(self, queues, document):
            self.queues = queues
            self.document = document

        @staticmethod
        def cloudformation_type():
            return "AWS::SQS::QueuePolicy"

        @staticmethod
        def cloudformation_name_type():
            return ""

        @property
        def physical_resource_id(self):
            return ",".join(self.queues)

        @classmethod
        def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name,
                                            **kwargs):
            props = cloudformation_json["Properties"]
            sqs = _client("sqs", region_name)
            for url in props["Queues"]:
                sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(props["PolicyDocument"])})
            return cls(props["Queues"], props["PolicyDocument"])

    class Secret(CloudFormationModel):
        __module__ = "moto.secretsmanager.cfn_secret"

        def __init__(self, arn):
            self.arn = arn

        @staticmethod
        def cloudformation_type():
            return "AWS::SecretsManager::Secret"

        @staticmethod
        def cloudformation_name_type():
            return "Name"

        @property
        def physical_resource_id(self):
            return self.arn

        @classmethod
        def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name,
                                            **kwargs):
            props = cloudformation_json["Properties"]
            sm = _client("secretsmanager", region_name)
            generate = props.get("GenerateSecretString")
            if generate:
                assert set(generate) <= {"PasswordLength", "ExcludePunctuation"}, f"unmapped {sorted(generate)}"
                value = sm.get_random_password(
                    PasswordLength=int(generate.get("PasswordLength", 32)),
                    ExcludePunctuation=generate.get("ExcludePunctuation") in (True, "true"))["RandomPassword"]
            else:
                value = props["SecretString"]
            created = sm.create_secret(Name=resource_name, Description=props.get("Description", ""),
                                       SecretString=value)
            return cls(created["ARN"])

    class MetricAlarm(CloudFormationModel):
        __module__ = "moto.cloudwatch.cfn_alarm"

        def __init__(self, name, arn):
            self.name, self.arn = name, arn

        @staticmethod
        def cloudformation_type():
            return "AWS::CloudWatch::Alarm"

        @staticmethod
        def cloudformation_name_type():
            return "AlarmName"

        @property
        def physical_resource_id(self):
            return self.name

        @classmethod
        def has_cfn_attr(cls, attr):
            return attr == "Arn"

        def get_cfn_attribute(self, attribute_name):
            if attribute_name == "Arn":
                return self.arn
            raise AssertionError(f"unmapped alarm attribute {attribute_name}")

        @classmethod
        def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name,
                                            **kwargs):
            props = dict(cloudformation_json["Properties"])
            mapped = {"AlarmDescription", "Namespace", "MetricName", "Statistic", "ExtendedStatistic", "Dimensions",
                      "Period", "EvaluationPeriods", "DatapointsToAlarm", "Threshold", "ComparisonOperator",
                      "TreatMissingData", "AlarmActions", "OKActions", "Unit"}
            assert set(props) <= mapped, f"unmapped alarm properties {set(props) - mapped}"
            for key in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
                if key in props:
                    props[key] = int(props[key])
            props["Threshold"] = float(props["Threshold"])
            cw = _client("cloudwatch", region_name)
            cw.put_metric_alarm(AlarmName=resource_name, **props)
            [alarm] = cw.describe_alarms(AlarmNames=[resource_name])["MetricAlarms"]
            return cls(resource_name, alarm["AlarmArn"])

        @classmethod
        def delete_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name):
            _client("cloudwatch", region_name).delete_alarms(AlarmNames=[resource_name])

        def delete(self, account_id, region_name):
            _client("cloudwatch", region_name).delete_alarms(AlarmNames=[self.name])

    class Subscription(CloudFormationModel):
        __module__ = "moto.sns.cfn_subscription"

        def __init__(self, arn):
            self.arn = arn

        @staticmethod
        def cloudformation_type():
            return "AWS::SNS::Subscription"

        @staticmethod
        def cloudformation_name_type():
            return ""

        @property
        def physical_resource_id(self):
            return self.arn

        @classmethod
        def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name,
                                            **kwargs):
            props = cloudformation_json["Properties"]
            assert set(props) <= {"TopicArn", "Protocol", "Endpoint"}, f"unmapped {sorted(props)}"
            created = _client("sns", region_name).subscribe(TopicArn=props["TopicArn"], Protocol=props["Protocol"],
                                                            Endpoint=props["Endpoint"], ReturnSubscriptionArn=True)
            return cls(created["SubscriptionArn"])

    def resolve_secrets(value, region_name):
        if isinstance(value, dict):
            return {k: resolve_secrets(v, region_name) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve_secrets(v, region_name) for v in value]
        if isinstance(value, str) and "{{resolve:secretsmanager:" in value:
            def secret(match):
                assert not match.group("rest"), f"unmapped dynamic reference {match.group(0)}"
                return _client("secretsmanager", region_name).get_secret_value(
                    SecretId=match.group("id"))["SecretString"]
            return _SECRET_REFERENCE.sub(secret, value)
        return value

    parse_resource = parsing.parse_resource

    def parse_resource_resolving_secrets(resource_json, resources_map):
        parsed = parse_resource(resource_json, resources_map)
        if parsed is None:
            return None
        resource_class, cleaned, resource_type = parsed
        return resource_class, resolve_secrets(cleaned, resources_map["AWS::Region"]), resource_type

    parsing.parse_resource = parse_resource_resolving_secrets

    from moto.cloudformation import models as cfn_models

    def expand_sam(template: dict) -> dict:
        if isinstance(template, dict) and template.get("Transform") == "AWS::Serverless-2016-10-31":
            from deploy_support import translate
            return translate(template)
        return template

    parse_template = cfn_models.Stack.parse_template

    def parse_and_expand(template: str) -> dict:
        return expand_sam(parse_template(template))

    cfn_models.Stack.parse_template = staticmethod(parse_and_expand)
    change_set_parse = cfn_models.ChangeSet._parse_template

    def change_set_parse_and_expand(self) -> None:
        change_set_parse(self)
        self.template_dict = expand_sam(self.template_dict)

    cfn_models.ChangeSet._parse_template = change_set_parse_and_expand

    def apply_change_set(self) -> None:
        stack = self.stack
        stack.resource_map.update(self.template_dict, self.parameters)
        stack.template, stack.template_dict = self.template, self.template_dict
        stack.output_map = stack._create_output_map()
        stack.parameters = dict(self.parameters)

    cfn_models.ChangeSet.apply = apply_change_set

    stack_resources = cfn_models.Stack.stack_resources.fget
    cfn_models.Stack.stack_resources = property(lambda self: [r for r in stack_resources(self) if r is not None])

    parsing.get_model_list.cache_clear()
    parsing.get_model_map.cache_clear()
    parsing.get_name_type_map.cache_clear()
    assert parsing.resource_class_from_type("AWS::SQS::QueuePolicy") is QueuePolicy
    assert parsing.resource_class_from_type("AWS::SecretsManager::Secret") is Secret
    assert parsing.resource_class_from_type("AWS::CloudWatch::Alarm") is MetricAlarm
    assert parsing.resource_class_from_type("AWS::SNS::Subscription") is Subscription
    _installed = True
