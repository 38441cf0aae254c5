"""`imgbatch webhooks ...` and `imgbatch listen`: manage webhooks, and try them out with a small
local receiver that checks each delivery's signature and prints the event."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

import click

from imgbatch.app import App, json_option, pass_app
from imgbatch.signatures import verify
from imgbatch.tables import Column, Grid

EVENT_TYPES = ("batch.created", "batch.started", "batch.completed", "batch.completed_with_errors", "batch.failed",
               "batch.cancelled", "batch.deleted", "archive.ready")


def deliveries_grid(items) -> Grid:
    grid = Grid([Column("created (UTC)"), Column("event"), Column("status"), Column("attempts", priority=2),
                 Column("last answer", priority=3, wrap=10), Column("id", style="dim", priority=4)])
    for d in items:
        answer = d.get("last_error") or (str(d["last_status_code"]) if d.get("last_status_code") else "")
        grid.add(d["created_at"].replace("T", " ").rstrip("Z"), d["event_type"], d["status"], str(d["attempts"]),
                 answer, d["id"])
    return grid


def webhooks_grid(items) -> Grid:
    grid = Grid([Column("url", wrap=20), Column("events", priority=2, wrap=10), Column("active", priority=3),
                 Column("description", priority=4, wrap=10), Column("id", style="dim")])
    for w in items:
        grid.add(w["url"], ", ".join(w["events"]), "yes" if w["active"] else "no", w.get("description") or "", w["id"])
    return grid


def register(cli: click.Group) -> None:
    @cli.group()
    def webhooks() -> None:
        """Signed HTTP callbacks for batch events (try them with `imgbatch listen`)."""

    @webhooks.command("create")
    @click.option("--url", required=True, help="Where events are POSTed (http or https).")
    @click.option("-e", "--event", "events", multiple=True, type=click.Choice(EVENT_TYPES + ("*",)),
                  help="Event type to receive; repeat for several. [default: all]")
    @click.option("-d", "--description", default="", help="What it is for.")
    @click.option("--inactive", is_flag=True, help="Create it switched off.")
    @json_option
    @pass_app
    def create(app: App, url: str, events: tuple[str, ...], description: str, inactive: bool) -> None:
        """Create a webhook; its signing secret is shown once, here."""
        created = app.api.create_webhook({"url": url, "events": list(events) or ["*"], "description": description,
                                          "active": not inactive})
        if app.json:
            app.emit(created)
            return
        w = created["webhook"]
        app.say(f"Created webhook {w['id']} for {w['url']} ({', '.join(w['events'])}).")
        app.say(f"Signing secret (shown only now): {created['secret']}")
        app.say(f"Try it: imgbatch listen --secret {created['secret']}, then imgbatch webhooks ping {w['id']}")

    @webhooks.command("list")
    @json_option
    @pass_app
    def list_(app: App) -> None:
        """List webhooks."""
        items = app.api.list_webhooks()
        if app.json:
            app.emit({"webhooks": items})
        elif not items:
            app.say("No webhooks yet; create one with `imgbatch webhooks create --url URL`.")
        else:
            app.table(webhooks_grid(items))

    @webhooks.command("show")
    @click.argument("webhook_id", metavar="WEBHOOK")
    @json_option
    @pass_app
    def show(app: App, webhook_id: str) -> None:
        """Show one webhook and its latest deliveries."""
        w = app.api.get_webhook(webhook_id)
        recent = app.api.list_deliveries(webhook_id, limit=10)["deliveries"]
        if app.json:
            app.emit({"webhook": w, "deliveries": recent})
            return
        for key in ("id", "url", "events", "description", "active", "created_at", "updated_at"):
            value = ", ".join(w[key]) if key == "events" else w[key]
            app.say(f"{key:<12} {value}")
        if recent:
            app.say("")
            app.table(deliveries_grid(recent))

    @webhooks.command("delete")
    @click.argument("webhook_id", metavar="WEBHOOK")
    @json_option
    @pass_app
    def delete(app: App, webhook_id: str) -> None:
        """Delete a webhook."""
        app.api.delete_webhook(webhook_id)
        if app.json:
            app.emit({"id": webhook_id, "deleted": True})
        else:
            app.say(f"Deleted webhook {webhook_id}.")

    @webhooks.command("ping")
    @click.argument("webhook_id", metavar="WEBHOOK")
    @json_option
    @pass_app
    def ping(app: App, webhook_id: str) -> None:
        """Send a test delivery (event type `ping`)."""
        delivery = app.api.ping_webhook(webhook_id)
        if app.json:
            app.emit({"delivery": delivery})
        else:
            app.say(f"Queued ping {delivery['event_id']} (delivery {delivery['id']}); "
                    f"see `imgbatch webhooks deliveries {webhook_id}`.")

    @webhooks.command("deliveries")
    @click.argument("webhook_id", metavar="WEBHOOK")
    @click.option("--limit", type=click.IntRange(1, 200), default=20, show_default=True)
    @json_option
    @pass_app
    def deliveries(app: App, webhook_id: str, limit: int) -> None:
        """The webhook's delivery log, newest first."""
        page = app.api.list_deliveries(webhook_id, limit=limit)
        if app.json:
            app.emit(page)
        elif not page["deliveries"]:
            app.say("No deliveries yet.")
        else:
            app.table(deliveries_grid(page["deliveries"]))

    @webhooks.command("redeliver")
    @click.argument("webhook_id", metavar="WEBHOOK")
    @click.argument("delivery_id", metavar="DELIVERY")
    @json_option
    @pass_app
    def redeliver(app: App, webhook_id: str, delivery_id: str) -> None:
        """Deliver the same event (same id) again, as a new delivery."""
        delivery = app.api.redeliver(webhook_id, delivery_id)
        if app.json:
            app.emit({"delivery": delivery})
        else:
            app.say(f"Queued event {delivery['event_id']} again (delivery {delivery['id']}).")

    @cli.command()
    @click.option("--secret", envvar="IMGBATCH_WEBHOOK_SECRET", required=True,
                  help="The webhook's signing secret. [env: IMGBATCH_WEBHOOK_SECRET]")
    @click.option("--host", default="127.0.0.1", show_default=True)
    @click.option("--port", type=click.IntRange(0, 65535), default=8787, show_default=True)
    @click.option("--count", type=click.IntRange(min=1), help="Stop after this many verified events.")
    @pass_app
    def listen(app: App, secret: str, host: str, port: int, count: int | None) -> None:
        """Receive webhook deliveries on http://HOST:PORT/, check signatures, print the events.

        Prints one JSON event per line on stdout; deliveries whose signature does not verify are
        answered 401 and reported on stderr. Point a webhook at the printed URL (the local
        stack allows receivers on 127.0.0.1)."""
        server = receiver(secret, on_event=lambda e: click.echo(json.dumps(e), nl=True),
                          on_refused=lambda why: app.warn(f"refused a delivery: {why}"), host=host, port=port)
        app.warn(f"Listening on http://{host}:{server.server_address[1]}/ (Ctrl-C to stop)")
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            while count is None or server.verified < count:
                time.sleep(0.1)
        except KeyboardInterrupt:
            pass
        finally:
            server.shutdown()
            server.server_close()


def receiver(secret: str, on_event: Callable[[dict], Any], on_refused: Callable[[str], Any],
             host: str = "127.0.0.1", port: int = 0, clock: Callable[[], float] = time.time) -> ThreadingHTTPServer:
    """An HTTP server that answers 204 to deliveries signed with `secret` (and hands their event
    to `on_event`), 401 to the rest."""
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            signature = self.headers.get("Imgbatch-Signature") or ""
            if not verify(secret, signature, body, int(clock())):
                on_refused(f"bad or missing Imgbatch-Signature from {self.client_address[0]}")
                self.send_response(401)
                self.end_headers()
                return
            try:
                event = json.loads(body)
            except ValueError:
                self.send_response(400)
                self.end_headers()
                return
            with lock:
                on_event(event)
                server.verified += 1
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    server.verified = 0
    return server

