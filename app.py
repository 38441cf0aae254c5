"""HTTP routes and event handlers. Each one parses input, calls one service, returns.

Business rules live in chalicelib/domain, use cases in chalicelib/services and
all AWS wiring in chalicelib/wiring.py.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path
from urllib.parse import urlencode

from chalice import AuthResponse, Chalice, Rate, Response
from chalice.app import Request

from chalicelib import errors, resources, wiring
from chalicelib.domain.validation import Invalid, parse_json, text_params
from chalicelib.errors import MISSING_TOKEN, BadRequest, ServiceError, Unauthorized
from chalicelib.services.auth import bearer_token
from chalicelib.services.views import batch_view

# Logging belongs to Powertools (chalicelib/observability.py): Chalice's own handler on the same
# `imgbatch` logger would print every line twice.
app = Chalice(app_name="imgbatch", configure_logs=False)
# No CORS: the UI is served by this API (same origin) and browsers upload to and download
# from S3, whose bucket has its own CORS rule (chalicelib/resources.py). Other origins' pages
# get no access to the API's answers; the CLI and scripts are not browsers and need none.
app.api.cors = False

ANONYMOUS = "anonymous"  # authorizer verdict for a missing or unknown token; routes answer 401
# API Gateway caches an authorizer's verdict per token this long: a revoked token keeps working
# until it expires; each expiry costs one authorizer call (a DynamoDB GetItem). README "Tokens".
AUTHORIZER_TTL_SECONDS = 60


@app.authorizer(ttl_seconds=AUTHORIZER_TTL_SECONDS)
def token_auth(auth_request):
    owner = wiring.get().auth.owner_for(bearer_token(auth_request.token))
    return AuthResponse(routes=["*"], principal_id=owner or ANONYMOUS)


@app.middleware("all")
def observe(event, get_response):
    """Every invocation runs with its correlation keys bound and flushes its metrics at the end;
    an HTTP request also logs one line with its route, status and duration."""
    obs = wiring.get().observability
    if isinstance(event, Request):
        params = event.uri_params or {}
        with obs.invocation("api_handler", _request_id(event.lambda_context),
                            api_request_id=(event.context or {}).get("requestId"),
                            batch_id=params.get("batch_id"), job_id=params.get("job_id")), \
                obs.transition("http.request", method=event.method,
                               route=(event.context or {}).get("resourcePath")) as step:
            response = get_response(event)
            status = response.status_code
            step.outcome = "ok" if status < 400 else "rejected" if status < 500 else "error"
            step.fields["status"] = status
            return response
    context = getattr(event, "context", None)
    event_id = event.to_dict().get("id") if hasattr(event, "to_dict") else None  # EventBridge; SQS: per record
    with obs.invocation(getattr(context, "function_name", None) or "lambda", _request_id(context),
                        event_id=event_id):
        return get_response(event)


def _request_id(context) -> str | None:
    return getattr(context, "aws_request_id", None)


def _owner() -> str:
    request = app.current_request
    owner = (request.context.get("authorizer") or {}).get("principalId")
    if not owner or owner == ANONYMOUS:
        raise Unauthorized(MISSING_TOKEN)
    return owner


# The one place where service errors become HTTP; codes follow Chalice's own names so clients
# see one vocabulary whether an error came from us or from Chalice itself.
HTTP_ERRORS = {
    errors.BadRequest: (400, "BadRequestError"),
    errors.Unauthorized: (401, "UnauthorizedError"),
    errors.NotFound: (404, "NotFoundError"),
    errors.Conflict: (409, "ConflictError"),   # errors.NotReady too: wrong state, for now
    errors.TooLarge: (413, "PayloadTooLargeError"),
}


def _error(exc: ServiceError) -> Response:
    status, code = next((v for k, v in HTTP_ERRORS.items() if isinstance(exc, k)), (500, "InternalServerError"))
    body = {"Code": code, "Message": exc.message}
    if exc.errors:
        body["Errors"] = exc.errors
    return Response(status_code=status, body=body, headers={"Content-Type": "application/json"})


def api(path: str, methods=("GET",), status: int = 200, public: bool = False, **kwargs):
    """Register a route that runs with the caller's owner and maps service errors to HTTP."""
    def register(view):
        @functools.wraps(view)
        def handler(**params):
            try:
                if public:
                    result = view(**params)
                else:
                    owner = _owner()
                    with _svc().observability.bind(owner=owner):
                        result = view(owner, **params)
            except ServiceError as exc:
                return _error(exc)
            if isinstance(result, Response):
                return result
            if result is None:
                return Response(status_code=204, body="")
            return Response(status_code=status, body=result, headers={"Content-Type": "application/json"})
        options = dict(methods=list(methods), **kwargs)
        if not public:
            options["authorizer"] = token_auth
        return app.route(path, **options)(handler)
    return register


def _body():
    raw = app.current_request.raw_body
    if not raw:
        raise BadRequest("request body is empty: send a JSON object")
    try:
        return parse_json(raw)
    except Invalid as exc:
        raise BadRequest(exc.message) from None


def _params() -> dict:
    try:
        return text_params(dict(app.current_request.query_params or {}))
    except Invalid as exc:
        raise BadRequest(exc.message) from None


def _flag(params: dict, name: str, default: bool = False) -> bool:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    if raw.lower() not in ("true", "false", "1", "0"):
        raise BadRequest(f"{name} must be true or false, got {raw!r}")
    return raw.lower() in ("true", "1")


def _svc():
    return wiring.get()


# -- health ------------------------------------------------------------------
@api("/health", methods=["GET", "HEAD"], public=True)
def health():
    if app.current_request.method == "HEAD":
        return Response(status_code=200, body="", headers={"Content-Type": "application/json"})
    return {"status": "ok"}


# -- web UI (static, no build step) --------------------------------------------
def _asset(name: str) -> Response:
    web = _svc().web
    body, content_type = web.asset(name)
    return Response(status_code=200, body=body,
                    headers={"Content-Type": content_type, "Cache-Control": "no-cache", **web.headers})


@api("/", methods=["GET", "HEAD"], public=True)
def web_index():
    # Behind API Gateway the page lives under the stage path (/api/); without the trailing
    # slash its relative URLs would miss the stage. A redirect, not an inline script (CSP).
    request = app.current_request
    path = request.context.get("path") or "/"
    if not path.endswith("/"):
        query = urlencode(_params())
        return Response(status_code=302, body="", headers={"Location": f"{path}/" + (f"?{query}" if query else "")})
    page = _asset("index.html")
    if request.method == "HEAD":   # the GET's headers, no body (uptime checks, link checkers)
        return Response(status_code=200, body="", headers=page.headers)
    return page


@api("/ui/{name}", public=True)
def web_asset(name):
    return _asset(name)


@api("/openapi.json", public=True)
def openapi():
    """The OpenAPI 3 description of this API (chalicelib/openapi.json, validated in tests)."""
    spec = Path(__file__).resolve().parent / "chalicelib" / "openapi.json"
    return Response(status_code=200, body=spec.read_text(encoding="utf-8"),
                    headers={"Content-Type": "application/json"})


@api("/me")
def whoami(owner):
    return {"owner": owner}


# -- pipelines ---------------------------------------------------------------
@api("/pipelines", methods=["POST"], status=201)
def create_pipeline(owner):
    return {"pipeline": _svc().pipelines.create(owner, _body())}


@api("/pipelines")
def list_pipelines(owner):
    return {"pipelines": _svc().pipelines.list(owner)}


@api("/pipelines/{pipeline_id}")
def get_pipeline(owner, pipeline_id):
    return {"pipeline": _svc().pipelines.get(owner, pipeline_id)}


@api("/pipelines/{pipeline_id}", methods=["PUT"])
def replace_pipeline(owner, pipeline_id):
    return {"pipeline": _svc().pipelines.replace(owner, pipeline_id, _body())}


@api("/pipelines/{pipeline_id}", methods=["DELETE"])
def delete_pipeline(owner, pipeline_id):
    _svc().pipelines.delete(owner, pipeline_id)


# -- batches -----------------------------------------------------------------
@api("/batches", methods=["POST"], status=201)
def create_batch(owner):
    return _svc().batches.create(owner, _body())


@api("/batches")
def list_batches(owner):
    return _svc().batches.list(owner, _params())


@api("/batches/stats")
def batch_stats(owner):
    return _svc().batches.stats(owner)


@api("/batches/{batch_id}")
def get_batch(owner, batch_id):
    return _svc().batches.get(owner, batch_id, _params())


@api("/batches/{batch_id}", methods=["PATCH"])
def update_batch(owner, batch_id):
    return _svc().batches.update(owner, batch_id, _body())


@api("/batches/{batch_id}/uploads")
def batch_uploads(owner, batch_id):
    return _svc().batches.uploads(owner, batch_id, _params())


# -- uploads in parts (files above MULTIPART_THRESHOLD; README "Uploads in parts") ------
@api("/batches/{batch_id}/jobs/{job_id}/multipart", methods=["POST"])
def start_multipart(owner, batch_id, job_id):
    """Start or resume: the parts S3 holds and presigned URLs for the parts still to send."""
    return _svc().multipart.start(owner, batch_id, job_id, _params())


@api("/batches/{batch_id}/jobs/{job_id}/multipart/complete", methods=["POST"])
def complete_multipart(owner, batch_id, job_id):
    return _svc().multipart.complete(owner, batch_id, job_id)


@api("/batches/{batch_id}/jobs/{job_id}/multipart", methods=["DELETE"])
def abort_multipart(owner, batch_id, job_id):
    _svc().multipart.abort(owner, batch_id, job_id)


@api("/batches/{batch_id}/cancel", methods=["POST"])
def cancel_batch(owner, batch_id):
    return {"batch": batch_view(_svc().processor.cancel(owner, batch_id))}


@api("/batches/{batch_id}/retry", methods=["POST"])
def retry_batch(owner, batch_id):
    return {"batch": batch_view(_svc().processor.retry(owner, batch_id))}


@api("/batches/{batch_id}/download")
def download_batch(owner, batch_id):
    """302 to the archive, or 202 + Retry-After while a large one is built; ?redirect=false
    answers 200 with the URL instead of redirecting (for browsers, which cannot read a 302)."""
    params = _params()
    result = _svc().archives.request(owner, batch_id, partial=_flag(params, "partial"))
    if result["status"] == "building":
        return Response(status_code=202, body=result, headers={"Retry-After": str(result["retry_after"]),
                                                               "Content-Type": "application/json"})
    if not _flag(params, "redirect", default=True):
        return result
    return Response(status_code=302, body="", headers={"Location": result["url"]})


def _redirect_or_json(result: dict) -> Response | dict:
    """302 to a staged file, or with ?redirect=false 200 {"url", "file_name", "expires_at", ...}."""
    if not _flag(_params(), "redirect", default=True):
        return result
    return Response(status_code=302, body="", headers={"Location": result["url"]})


@api("/batches/{batch_id}/results")
def batch_results(owner, batch_id):
    """One row per file and pipeline as csv (default), xlsx or json: 302 to the staged file."""
    return _redirect_or_json(_svc().results.request(owner, batch_id, _params()))


@api("/batches/{batch_id}/contact-sheet")
def contact_sheet(owner, batch_id):
    """A PDF of the batch's previews in a grid, with names and failure marks: 302 to the staged file."""
    return _redirect_or_json(_svc().contact_sheets.request(owner, batch_id, _params()))


@api("/jobs/{job_id}/download")
def download_job(owner, job_id):
    params = _params()
    url = _svc().archives.job_output(owner, job_id, params.get("pipeline_id") or None)
    if not _flag(params, "redirect", default=True):
        return {"url": url}
    return Response(status_code=302, body="", headers={"Location": url})


@api("/batches/{batch_id}", methods=["DELETE"])
def delete_batch(owner, batch_id):
    _svc().deleter.delete(owner, batch_id)


# -- jobs --------------------------------------------------------------------
@api("/jobs")
def list_jobs(owner):
    return _svc().batches.jobs(owner, _params())


@api("/jobs/{job_id}")
def get_job(owner, job_id):
    return _svc().batches.get_job(owner, job_id)


# -- webhooks ----------------------------------------------------------------
@api("/webhooks", methods=["POST"], status=201)
def create_webhook(owner):
    return _svc().webhooks.create(owner, _body())


@api("/webhooks")
def list_webhooks(owner):
    return _svc().webhooks.list(owner)


@api("/webhooks/{webhook_id}")
def get_webhook(owner, webhook_id):
    return _svc().webhooks.get(owner, webhook_id)


@api("/webhooks/{webhook_id}", methods=["PUT"])
def replace_webhook(owner, webhook_id):
    return _svc().webhooks.replace(owner, webhook_id, _body())


@api("/webhooks/{webhook_id}", methods=["DELETE"])
def delete_webhook(owner, webhook_id):
    _svc().webhooks.delete(owner, webhook_id)


@api("/webhooks/{webhook_id}/ping", methods=["POST"], status=202)
def ping_webhook(owner, webhook_id):
    return _svc().webhooks.ping(owner, webhook_id)


@api("/webhooks/{webhook_id}/deliveries")
def webhook_deliveries(owner, webhook_id):
    return _svc().webhooks.deliveries_page(owner, webhook_id, _params())


@api("/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver", methods=["POST"], status=202)
def redeliver_webhook(owner, webhook_id, delivery_id):
    return _svc().webhooks.redeliver(owner, webhook_id, delivery_id)


# -- events ------------------------------------------------------------------
def _sqs_records(event) -> list[tuple]:
    return [(r.receipt_handle, r.body, r.to_dict().get("messageId")) for r in event]


def _partial_failures(failures: list[str]) -> dict:
    """Failed records are reported one by one so SQS redelivers only those (ReportBatchItemFailures)."""
    return {"batchItemFailures": [{"itemIdentifier": mid} for mid in failures]}


@app.on_sqs_message(**resources.ARRIVALS.event_source())
def register_uploads(event):
    """S3 ObjectCreated -> SQS -> here: count the upload at once, then queue its processing.
    Cheap and separate from processing, so `uploaded` never waits behind the render backlog."""
    from chalicelib.adapters.sqs_events import handle_sqs_records
    container = wiring.get()
    processor = container.processor
    return _partial_failures(handle_sqs_records(processor.register_key, _sqs_records(event),
                                                processor.begin_registrations, obs=container.observability,
                                                flush=processor.flush_forwards))


@app.on_sqs_message(**resources.DROPS.event_source())
def register_drop(event):
    """A drop folder's marker (drop/{owner}/{folder}/_READY) -> a batch of the folder's objects,
    whose files then arrive through the arrivals queue like uploads."""
    from chalicelib.adapters.sqs_events import handle_sqs_records
    drops = wiring.get().dropfolders
    return _partial_failures(handle_sqs_records(lambda key, _job: drops.marker_arrived(key), _sqs_records(event),
                                                obs=wiring.get().observability))


@app.on_sqs_message(**resources.UPLOADS.event_source())
def process_upload(event):
    """Registered uploads (and retries) -> the pipelines, one file at a time."""
    from chalicelib.adapters.sqs_events import handle_sqs_records
    return _partial_failures(handle_sqs_records(wiring.get().processor.process_key, _sqs_records(event),
                                                obs=wiring.get().observability))


@app.schedule(Rate(1, unit=Rate.MINUTES), name="expire_uploads")
def expire_uploads(event):
    """Files still awaiting upload after the deadline fail with upload_expired; cancels and
    deletes a crash interrupted are finished."""
    result = wiring.get().sweep.run()
    if any(result.values()):
        wiring.get().observability.info("sweep.finished", **result)
    return result


@app.on_sqs_message(**resources.MAINTENANCE.event_source())
def run_maintenance(event):
    """Work too long for the request that asked for it (materialising a big batch's jobs, purging
    a deleted one, cancelling a big batch's jobs); each message is one bounded step."""
    for record in event:
        wiring.get().maintenance.run(json.loads(record.body))


@app.on_sqs_message(**resources.ARCHIVES.event_source())
def build_archive(event):
    """Builds archives too large for an API request (the client polls GET .../download), and
    the ZIPs of batches that just became final (PREBUILD_ARCHIVES)."""
    for record in event:
        message = json.loads(record.body)
        with wiring.get().observability.bind(event_id=record.to_dict().get("messageId"), batch_id=message["batch_id"]):
            wiring.get().archives.build_requested(message["batch_id"], bool(message.get("partial")),
                                                  prebuild=bool(message.get("prebuild")))


@app.on_dynamodb_record(**resources.BATCHES.stream_source())
def publish_batch_events(event):
    """Every committed change of a batch -> its lifecycle events -> EventBridge and webhooks.
    A failed change is reported, so the stream retries from it, in order (ReportBatchItemFailures)."""
    container = wiring.get()
    changes = [container.batch_changes.change(r.sequence_number, r.old_image, r.new_image) for r in event]
    failed = container.events.on_changes(changes)
    return {"batchItemFailures": [{"itemIdentifier": seq} for seq in failed]}


@app.on_sqs_message(**resources.DELIVERIES.event_source())
def deliver_webhooks(event):
    """One webhook delivery attempt per message, ten in parallel (each waits at most its timeout)."""
    from concurrent.futures import ThreadPoolExecutor
    deliveries = wiring.get().deliveries
    records = [(r.to_dict().get("messageId"), r.body) for r in event]

    def attempt(record):
        message_id, body = record
        try:
            deliveries.attempt(json.loads(body))
            return None
        except Exception:
            app.log.exception("delivery message %s failed; SQS will redeliver it", message_id)
            return message_id

    with ThreadPoolExecutor(max_workers=max(1, len(records))) as pool:
        failures = [m for m in pool.map(attempt, records) if m]
    return _partial_failures(failures)


@app.on_sqs_message(**resources.ARCHIVE_PARTS.event_source())
def build_archive_part(event):
    """Uploads one task's parts of an archive built in parallel; the last one completes it."""
    for record in event:
        message = json.loads(record.body)
        wiring.get().archives.build_task(message["batch_id"], message["fingerprint"], message["key"],
                                         message["upload_id"], int(message["task"]))
