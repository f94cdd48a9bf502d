"""The dashboard: a Flask app over one Redis database's queues.

- ``/``                   every queue: counts per state, paused, rates in/out, wait/run p99, small charts
- ``/queue?name=Q``       charts of counts and throughput over time, wait/run histograms, schedules, events
- ``/jobs?queue=Q&state=S&cursor=C[&match=M]``   jobs in a state, a page at a time (ONCE.LIST), searched on the
  server (LIST ... MATCH) when the search box has text
- ``/job?queue=Q&id=ID``  one job (ONCE.INSPECT): payload, error, result and progress shown in full, as text; a
  finished job the queue keeps (KEEP) shows as completed or cancelled with its outcome; a job pushed with AFTER
  shows its dependency counts and the jobs it waits on (ONCE.DEPS), each linked to its own page
- ``/confirm?...`` then ``POST /action``   retry one/all dead, cancel, purge a state, pause/resume
- ``/metrics``            Prometheus metrics (once/exporter.py)

Security: a request whose Host is not one the dashboard is served under (loopback names with its port, the
``--host`` given, ``--allowed-host`` values) gets 400 before anything is read, so a page that rebinds its DNS name
to 127.0.0.1 reaches nothing. Actions are POSTs that carry a CSRF token bound to the session; with ``--token`` they
also need the token (given once on /login, or in the confirmation form, or as ``Authorization: Bearer``, which alone
skips the CSRF check); ``--basic-auth`` guards every page; ``--read-only`` serves no action at all. The app refuses
to start beyond loopback with actions and neither. Every text from the server (payloads, errors, ids, queue names)
is escaped by Jinja's autoescape, and a Content-Security-Policy allows scripts and styles from this app only.
"""
import collections
import hmac
import ipaddress
import os
import re
import secrets
import threading
import time
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple
from urllib.parse import urlsplit

import redis
from flask import Flask, Response, abort, flash, jsonify, redirect, render_template, request, session, url_for

from ..admin import Admin
from ..client import Once
from ..errors import TYPE_NAME, WrongTypeError
from ..format import fmt_ms, fmt_rate, fmt_time
from ..server import eviction_warning, has_command, has_retry_all, info_once, queues, readable_stats
from ..server import server_eviction_warning
from ..serving import EXIT_USAGE, CliError, serve_until_stopped
from ..types import FLOW_STATES, KEPT_STATES, PURGEABLE, STATES, buckets_to_counts, plain, text
from .charts import histogram_chart, line_chart

ACTIONS = {
    "retry": "Retry the selected dead jobs",
    "retry_all": "Retry every dead job",
    "cancel": "Cancel the selected jobs",
    "purge": "Purge every job in a state",
    "pause": "Pause the queue",
    "resume": "Resume the queue",
}
ACTION_COMMANDS = {"retry": "ONCE.RETRY", "retry_all": "ONCE.RETRY", "cancel": "ONCE.CANCEL",
                   "purge": "ONCE.PURGE", "pause": "ONCE.PAUSE", "resume": "ONCE.RESUME"}


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
WILDCARD_BINDS = ("", "0.0.0.0", "::", "[::]")
_HOST_NAME = re.compile(r"^(\[[0-9a-f:.]+\]|[a-z0-9]([a-z0-9.-]*[a-z0-9])?)$")


class ConfigError(Exception):
    pass


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def split_host(value: str) -> Tuple[str, Optional[int]]:
    """``name:port``, ``[v6]:port``, ``name`` or a bare IPv6 address as (lowercase name, port or None); ValueError
    when it is none of these."""
    v = value.strip().lower()
    if v.startswith("["):
        name, _, rest = v.partition("]")
        name += "]"
        if rest and not rest.startswith(":"):
            raise ValueError(value)
        port = rest[1:]
    elif v.count(":") > 1:
        name, port = f"[{v}]", ""
    else:
        name, _, port = v.partition(":")
    if not _HOST_NAME.match(name) or (port and not (port.isdigit() and 0 < int(port) < 65536)):
        raise ValueError(value)
    return name, int(port) if port else None


def allowed_hosts(bind_host: str, port: int, extra: Iterable[str] = ()) -> Set[str]:
    """The Host header values the dashboard answers: ``name:port`` entries for that port only, bare ``name``
    entries (an ``--allowed-host`` given without a port, as behind a proxy) for any port."""
    names = set(LOOPBACK_NAMES)
    if bind_host.strip().lower() not in WILDCARD_BINDS:
        try:
            names.add(split_host(bind_host)[0])
        except ValueError:
            raise ConfigError(f"--host {bind_host!r} is not a host name or address") from None
    out = {f"{n}:{port}" for n in names}
    for v in extra:
        try:
            name, p = split_host(v)
        except ValueError:
            raise ConfigError(f"--allowed-host {v!r} is not a host name, address or HOST:PORT") from None
        out.add(f"{name}:{p}" if p else name)
    return out


def keeps(r: Any) -> bool:
    """Whether the server's module keeps finished jobs and cancels running ones (issue 21: ONCE.RESULT)."""
    return has_command(r, "ONCE.RESULT")


def has_flows(r: Any) -> bool:
    """Whether the server's module has flows (issue 24: PUSH ... AFTER, the ``waiting`` state, ONCE.DEPS)."""
    return has_command(r, "ONCE.DEPS")


def tab_states(r: Any) -> Tuple[str, ...]:
    """The states whose jobs ONCE.LIST lists on this server's module, in the order a job goes through them."""
    return ((FLOW_STATES if has_flows(r) else ()) + STATES + (KEPT_STATES if keeps(r) else ()))


DEPS_SHOWN = 100     # dependencies listed on a job's page (ONCE.DEPS ... COUNT); the counts say how many in all


def host_allowed(header: Optional[str], allowed: Set[str]) -> bool:
    if not header:
        return False
    try:
        name, port = split_host(header)
    except ValueError:
        return False
    return name in allowed or f"{name}:{port or 80}" in allowed


def same(given: Optional[str], want: str) -> bool:
    """A constant-time comparison that takes any text (compare_digest refuses non-ASCII str)."""
    return given is not None and hmac.compare_digest(given.encode(), want.encode())


# ---------------------------------------------------------------------------------------------------------------
# history kept in the process: periodic STATS of every queue


class History:
    """Samples ONCE.STATS of every queue every ``interval`` s and keeps ``span`` s of them for the charts."""

    def __init__(self, r: Any, interval: float = 2.0, span: float = 600.0, match: Optional[str] = None):
        self.r = r
        self.interval = max(0.1, float(interval))
        self.span = float(span)
        self.match = match
        self.samples: collections.deque = collections.deque(maxlen=max(2, int(self.span / self.interval) + 2))
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.thread: Optional[threading.Thread] = None
        self.last_error: Optional[str] = None

    def sample(self) -> Dict[str, Dict[str, Any]]:
        stats, _ = readable_stats(self.r, queues(self.r, match=self.match))
        with self.lock:
            self.samples.append((time.time(), stats))
        return stats

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.sample()
                self.last_error = None
            except redis.RedisError as e:
                self.last_error = str(e)
            self.stop_event.wait(self.interval)

    def start(self) -> "History":
        self.thread = threading.Thread(target=self.run, name="once-web-history", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        if self.thread:
            self.thread.join(5)

    def snapshot(self) -> List:
        with self.lock:
            return list(self.samples)

    def series(self, queue: str, field: str) -> List:
        return [(t, s[queue].get(field)) if queue in s else (t, None) for t, s in self.snapshot()]

    def rate_series(self, queue: str, *fields: str) -> List:
        out, prev = [], None
        for t, s in self.snapshot():
            cur = s.get(queue)
            if cur is not None and prev is not None and prev[1] is not None and t > prev[0]:
                v = sum((cur.get(f, 0) or 0) - (prev[1].get(f, 0) or 0) for f in fields) / (t - prev[0])
                out.append((t, max(0.0, v)))
            else:
                out.append((t, None))
            prev = (t, cur)
        return out

    def rates(self, queue: str) -> Dict[str, Optional[float]]:
        """in/out/fail per second over the last two samples (over about ``interval`` s)."""
        snap = self.snapshot()
        if len(snap) < 2:
            return {"in": None, "out": None, "fail": None}
        (t0, s0), (t1, s1) = snap[-2], snap[-1]
        a, b = s0.get(queue), s1.get(queue)
        if a is None or b is None or t1 <= t0:
            return {"in": None, "out": None, "fail": None}

        def d(*fields):
            return max(0.0, sum((b.get(f, 0) or 0) - (a.get(f, 0) or 0) for f in fields) / (t1 - t0))
        return {"in": d("pushed_total"), "out": d("acked_total"), "fail": d("nacked_total", "expired_total")}


# ---------------------------------------------------------------------------------------------------------------
# the app


def create_app(r: Any, *, read_only: bool = False, token: Optional[str] = None, basic_auth: Optional[str] = None,
               interval: float = 2.0, history: float = 600.0, match: Optional[str] = None,
               cookie_suffix: str = "", start_history: bool = True,
               hosts: Optional[Iterable[str]] = None) -> Flask:
    """``hosts``: the Host values to answer (allowed_hosts()); by default the loopback names on any port."""
    app = Flask(__name__)
    app.secret_key = secrets.token_bytes(32)
    app.config.update(SESSION_COOKIE_NAME=f"once_session{cookie_suffix}", SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Strict", MAX_CONTENT_LENGTH=1 << 20)
    app.jinja_env.autoescape = True
    hist = History(r, interval, history, match)
    if start_history:
        hist.start()
    app.extensions["once_history"] = hist
    basic = None
    if basic_auth:
        if ":" not in basic_auth:
            raise ConfigError("--basic-auth must be USER:PASSWORD")
        basic = basic_auth.split(":", 1)
    opts: Dict[str, Any] = {"read_only": read_only, "token": token or None, "basic": basic, "match": match,
            "hosts": set(LOOPBACK_NAMES if hosts is None else hosts)}
    app.extensions["once_options"] = opts

    app.jinja_env.filters.update(time=fmt_time, ms=fmt_ms, rate=fmt_rate)
    app.jinja_env.globals.update(STATES=STATES, PURGEABLE=PURGEABLE, ACTIONS=ACTIONS, read_only=read_only)

    @app.context_processor
    def _tabs() -> Dict[str, Any]:
        # the kept completed/cancelled jobs exist (and LIST takes them) only where the module has ONCE.RESULT, the
        # waiting ones where it has ONCE.DEPS
        return {"TABS": tab_states(r)}

    def csrf_token() -> str:
        if "csrf" not in session:
            session["csrf"] = secrets.token_urlsafe(32)
        return session["csrf"]

    def authed() -> bool:
        if not opts["token"]:
            return True
        if session.get("authed") is True:
            return True
        return same(_bearer(), opts["token"])

    app.jinja_env.globals.update(csrf_token=csrf_token, authed=authed, needs_token=bool(opts["token"]))

    # registered first, so it runs before anything else reads the request, the session or Redis
    @app.before_request
    def _host():
        host = request.headers.get("Host")
        if host_allowed(host, opts["hosts"]):
            return None
        return Response(f"this dashboard does not answer to Host {host!r}: open it under the name it is served "
                        f"under, or start it with --allowed-host NAME\n", 400,
                        {"Content-Type": "text/plain; charset=utf-8"})

    @app.before_request
    def _basic_auth():
        if basic is None:
            return None
        a = request.authorization
        ok = (a is not None and a.type == "basic" and hmac.compare_digest((a.username or "").encode(),
                                                                          basic[0].encode())
              and hmac.compare_digest((a.password or "").encode(), basic[1].encode()))
        if not ok:
            return Response("authentication required\n", 401, {"WWW-Authenticate": 'Basic realm="once"'})
        return None

    @app.after_request
    def _headers(resp):
        resp.headers["Content-Security-Policy"] = ("default-src 'none'; script-src 'self'; style-src 'self'; "
                                                   "img-src 'self' data:; connect-src 'self'; form-action 'self'; "
                                                   "frame-ancestors 'none'; base-uri 'none'")
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["Referrer-Policy"] = "same-origin"
        resp.headers["Cache-Control"] = "no-store"
        return resp

    @app.errorhandler(redis.ConnectionError)
    def _down(e):
        return render_template("error.html", title="Redis unreachable", message=str(e)), 503

    @app.errorhandler(redis.ResponseError)
    def _refused(e):
        return render_template("error.html", title="The server refused", message=str(e)), 502

    @app.errorhandler(WrongTypeError)
    def _not_a_queue(e):
        return render_template("error.html", title="Not a Once queue", message=str(e)), 409

    @app.errorhandler(redis.exceptions.NoPermissionError)
    def _noperm(e):
        return render_template("error.html", title="Not permitted to this Redis user", message=str(e)), 403

    def key_type(name: str) -> Optional[str]:
        """TYPE of the key; with only EXISTS permitted "none" or None; None when this user may run neither."""
        try:
            return text(r.type(name))
        except redis.exceptions.NoPermissionError:
            pass
        try:
            return None if r.exists(name) else "none"
        except redis.exceptions.NoPermissionError:
            return None

    def check_queue(name: str) -> None:
        """404 for a missing key, WrongTypeError for a key of another type; a user who may run neither TYPE nor
        EXISTS goes on, and Admin's calls name a wrong type (WRONGTYPE) the same way."""
        kind = key_type(name)
        if kind == "none":
            abort(404, f"no queue {name!r}")
        if kind not in (TYPE_NAME, None):
            raise WrongTypeError(name, kind)

    # -- reads -----------------------------------------------------------------------------------------------

    def overview_rows() -> Tuple[List[Dict[str, Any]], Optional[str]]:
        """The overview's rows, and the NOPERM message when queues this user may not read were left out."""
        stats, hidden = readable_stats(r, queues(r, match=match))
        rows = []
        for n, s in stats.items():
            rates = hist.rates(n)
            rows.append({"name": n, "stats": s, "rates": rates,
                         "spark": line_chart([("in", hist.rate_series(n, "pushed_total")),
                                              ("out", hist.rate_series(n, "acked_total"))],
                                             width=140, height=28, spark=True,
                                             title=f"rates of {n}")})
        return rows, hidden

    @app.route("/")
    def overview():
        info = {}
        try:
            info = info_once(r)
        except redis.ResponseError:       # INFO not permitted to this user: the page goes without the server facts
            pass
        rows, hidden = overview_rows()
        return render_template("overview.html", rows=rows, info=info, interval=hist.interval,
                               eviction=eviction_warning(info), hidden=hidden)

    @app.route("/fragment/overview")
    def overview_fragment():
        return render_template("_overview_rows.html", rows=overview_rows()[0])

    @app.route("/api/queues")
    def api_queues():
        return jsonify([{"queue": row["name"], **row["stats"], "rates": row["rates"]} for row in overview_rows()[0]])

    def queue_arg() -> str:
        name = request.args.get("name") or request.args.get("queue") or ""
        if not name:
            abort(400, "no queue given")
        return name

    def queue_live(name: str) -> Dict[str, Any]:
        a = Admin(r, name)
        s = a.stats()
        shown = (FLOW_STATES if has_flows(r) else ()) + STATES
        counts = line_chart([(st, hist.series(name, st)) for st in shown], title="jobs by state")
        thru = line_chart([("in", hist.rate_series(name, "pushed_total")),
                           ("out", hist.rate_series(name, "acked_total")),
                           ("fail", hist.rate_series(name, "nacked_total", "expired_total"))],
                          title="throughput", unit="/s")
        hists, hists_note = {}, None
        if has_command(r, "ONCE.HISTOGRAM"):
            try:
                for kind in ("wait", "run"):
                    hists[kind] = histogram_chart(buckets_to_counts(a.histogram(kind)),
                                                  title=f"{kind} time (p50 {fmt_ms(s.get(kind + '_p50_ms'))}, "
                                                        f"p99 {fmt_ms(s.get(kind + '_p99_ms'))})")
            except redis.exceptions.NoPermissionError as e:
                hists, hists_note = {}, f"no wait/run histograms: {e}"
        return {"stats": s, "rates": hist.rates(name), "counts_chart": counts, "thru_chart": thru,
                "hists": hists, "hists_note": hists_note}

    @app.route("/queue")
    def queue_page():
        name = queue_arg()
        check_queue(name)
        a = Admin(r, name)
        schedules, schedules_note = [], None
        try:
            schedules = a.schedules()
        except redis.exceptions.NoPermissionError as e:
            schedules_note = str(e)
        events, events_note = [], None
        if has_command(r, "ONCE.EVENTS"):
            try:
                events = recent_events(a, 50)
                if not events:
                    events_note = "no events: set EVENTS-MAX to keep them (once configure QUEUE --events-max 1000)"
            except redis.ResponseError as e:
                events_note = str(e)
        else:
            events_note = "this server's module has no ONCE.EVENTS"
        return render_template("queue.html", name=name, live=queue_live(name), schedules=schedules,
                               schedules_note=schedules_note, events=events, events_note=events_note,
                               eviction=server_eviction_warning(r),
                               can_list=has_command(r, "ONCE.LIST"), can_pause=has_command(r, "ONCE.PAUSE"),
                               can_purge=has_command(r, "ONCE.PURGE"), can_retry_all=has_retry_all(r))

    @app.route("/fragment/queue")
    def queue_fragment():
        name = queue_arg()
        return render_template("_queue_live.html", name=name, live=queue_live(name))

    def search_glob(words: str) -> str:
        """The search box's text as a MATCH pattern: a glob as typed when it has * ? or [, else found anywhere
        (``ada`` searches ``*ada*``)."""
        return words if any(c in words for c in "*?[") else f"*{words}*"

    @app.route("/jobs")
    def jobs_page():
        name = queue_arg()
        state = request.args.get("state", "ready")
        if state not in tab_states(r):
            abort(400, "unknown state")
        cursor = request.args.get("cursor", "0") or "0"
        try:
            count = max(1, min(1000, int(request.args.get("count", "25"))))
        except ValueError:
            abort(400, "bad count")
        try:
            page = max(1, int(request.args.get("page", "1") or 1))
        except ValueError:
            abort(400, "bad page")
        if not has_command(r, "ONCE.LIST"):
            return render_template("error.html", title="No ONCE.LIST",
                                   message="this server's Once module has no ONCE.LIST yet"), 501
        check_queue(name)
        match = request.args.get("match", "").strip()
        if match:
            try:
                next_cursor, found = Once(r, name).list(state, cursor=cursor, count=count, payloads=True,
                                                        match=search_glob(match))
            except redis.ResponseError as exc:
                if "MATCH" not in str(exc).upper():
                    raise
                return render_template("error.html", title="No search",
                                       message=f"this server's Once module has no ONCE.LIST ... MATCH: {exc}"), 501
            jobs = [plain(j) for j in found]
        else:
            next_cursor, jobs = Admin(r, name).list(state, cursor=cursor, count=count, payloads=True)
        s = Admin(r, name).stats()
        return render_template("jobs.html", name=name, state=state, jobs=jobs, next_cursor=next_cursor,
                               cursor=cursor, count=count, stats=s, page=page, match=match or None,
                               can_purge=has_command(r, "ONCE.PURGE"), can_retry_all=has_retry_all(r))

    @app.route("/job")
    def job_page():
        name = queue_arg()
        job_id = request.args.get("id", "")
        check_queue(name)
        a = Admin(r, name)
        job = a.inspect(job_id)
        if job is None:
            return render_template("error.html", title="No such job",
                                   message=f"no job {job_id!r} in queue {name!r}"), 404
        deps = (a.deps(job_id, count=DEPS_SHOWN) or []) if job.get("deps_total") else []
        return render_template("job.html", name=name, job=job, deps=deps, can_cancel_running=keeps(r))

    # -- actions ---------------------------------------------------------------------------------------------

    def action_target(form) -> Dict[str, Any]:
        action = form.get("action", "")
        if action not in ACTIONS:
            abort(400, "unknown action")
        name = form.get("queue", "")
        if not name:
            abort(400, "no queue given")
        ids = [i for i in form.getlist("id") if i]
        state = form.get("state", "")
        if action in ("retry", "cancel") and not ids:
            abort(400, "no job selected")
        if action == "purge" and state not in PURGEABLE:
            abort(400, "purge takes ready, delayed or dead")
        return {"action": action, "queue": name, "ids": ids, "state": state}

    def safe_next(value: Optional[str], default: str) -> str:
        if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
            return value
        return default

    @app.route("/confirm")
    def confirm():
        if read_only:
            abort(403, "read-only dashboard")
        target = action_target(request.args)
        nxt = safe_next(request.args.get("next"), url_for("queue_page", name=target["queue"]))
        return render_template("confirm.html", t=target, next=nxt, description=ACTIONS[target["action"]])

    @app.route("/action", methods=["POST"])
    def action():
        if read_only:
            abort(403, "read-only dashboard: no actions")
        # only the configured token makes an API call (no cookie, so no CSRF risk); any other bearer is ignored
        api = bool(opts["token"]) and same(_bearer(), opts["token"])
        if opts["token"] and not (session.get("authed") is True or api
                                  or same(request.form.get("token", ""), opts["token"])):
            abort(403, "this action needs the dashboard's token")
        if not api:
            check_csrf()
        target = action_target(request.form)
        if opts["token"] and request.form.get("token"):
            session["authed"] = True
        a = Admin(r, target["queue"])
        act = target["action"]
        try:
            if act == "retry":
                n = a.retry(target["ids"])
                msg = f"retried {n} of {len(target['ids'])} job(s)"
            elif act == "retry_all":
                n = a.retry_all()
                msg = f"retried {n} dead job(s)"
            elif act == "cancel":
                n = a.cancel(target["ids"])
                msg = f"cancelled {n} of {len(target['ids'])} job(s)"
            elif act == "purge":
                n = a.purge(target["state"])
                msg = f"purged {n} {target['state']} job(s)"
            elif act == "pause":
                msg = "paused" if a.pause() else "already paused"
            else:
                msg = "resumed" if a.resume() else "was not paused"
            flash(f"{target['queue']}: {msg}", "ok")
        except redis.ResponseError as e:
            flash(f"{target['queue']}: {ACTION_COMMANDS[act]} failed: {e}", "error")
        if api:
            return jsonify({"ok": True})
        return redirect(safe_next(request.form.get("next"), url_for("queue_page", name=target["queue"])), 303)

    def check_csrf() -> None:
        sent = request.form.get("csrf", "")
        want = session.get("csrf", "")
        if not want or not sent or not same(sent, want):
            abort(403, "CSRF check failed: reload the page and try again")
        origin = request.headers.get("Origin")
        if origin and origin != "null":
            if urlsplit(origin).netloc != request.host:
                abort(403, "CSRF check failed: the request came from another site")

    @app.route("/login", methods=["GET", "POST"])
    def login():
        if request.method == "POST":
            check_csrf()
            if opts["token"] and same(request.form.get("token", ""), opts["token"]):
                session["authed"] = True
                flash("signed in: actions allowed", "ok")
                return redirect(safe_next(request.form.get("next"), url_for("overview")), 303)
            flash("wrong token", "error")
            return render_template("login.html", next=request.form.get("next", "")), 403
        return render_template("login.html", next=request.args.get("next", ""))

    @app.route("/metrics")
    def metrics():
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        from ..exporter import registry_for
        if "once_registry" not in app.extensions:
            app.extensions["once_registry"] = registry_for(r, match)
        return Response(generate_latest(app.extensions["once_registry"]), 200,
                        {"Content-Type": CONTENT_TYPE_LATEST})

    @app.errorhandler(400)
    @app.errorhandler(403)
    @app.errorhandler(404)
    def _http_error(e):
        return render_template("error.html", title=f"{e.code} {e.name}", message=e.description), e.code

    return app


def _bearer() -> Optional[str]:
    h = request.headers.get("Authorization", "")
    if h.lower().startswith("bearer "):
        return h[7:].strip()
    return None


def recent_events(a: Admin, n: int) -> List[Dict[str, Any]]:
    """The newest ``n`` events, newest first (ONCE.EVENTS reads oldest first: page through, bounded)."""
    tail: collections.deque = collections.deque(maxlen=n)
    after, count = None, 1000
    for _ in range(100):
        try:
            page = a.events(after=after, count=count)
        except redis.ResponseError as e:
            if "COUNT" not in str(e) or count == 100:
                raise
            count = 100                      # a smaller COUNT range than expected: read smaller pages
            continue
        if not page:
            break
        tail.extend(page)
        after = page[-1]["event_id"]
        if len(page) < count:
            break
    return list(reversed(tail))


def serve(r: Any, args: Any) -> int:
    """``once web``: serves the dashboard until interrupted (SIGINT/SIGTERM)."""
    from werkzeug.serving import make_server

    token = args.token or None
    if not is_loopback(args.host) and not args.read_only and not (token or args.basic_auth):
        raise CliError(f"refusing to serve actions on {args.host} (beyond loopback) without --token or "
                       f"--basic-auth; give one of them, or --read-only", EXIT_USAGE)
    # --allowed-host (repeatable) and $ONCE_WEB_ALLOWED_HOSTS (comma-separated) add names to answer to
    extra = list(args.allowed_host or [])
    extra += [h for h in os.environ.get("ONCE_WEB_ALLOWED_HOSTS", "").replace(" ", ",").split(",") if h]
    try:
        allowed_hosts(args.host, args.port, extra)
    except ConfigError as e:
        raise CliError(str(e), EXIT_USAGE) from None
    try:
        r.ping()
    except redis.exceptions.NoPermissionError:
        pass                                       # reachable; a monitor user may not be granted PING
    try:
        app = create_app(r, read_only=args.read_only, token=token, basic_auth=args.basic_auth,
                         interval=args.interval, history=args.history, match=args.match,
                         cookie_suffix=f"_{args.port}", hosts=())
    except ConfigError as e:
        raise CliError(str(e), EXIT_USAGE) from None
    try:
        server = make_server(args.host, args.port, app, threaded=True)
    except (OSError, SystemExit) as e:             # werkzeug reports a failed bind by SystemExit
        app.extensions["once_history"].stop()
        why = getattr(e, "strerror", None) or "the address cannot be bound"
        raise CliError(f"cannot listen on {args.host}:{args.port}: {why}", 1) from None
    # the port is known only now (--port 0); no request is served before serve_forever
    app.extensions["once_options"]["hosts"] = allowed_hosts(args.host, server.server_port, extra)
    mode = "read-only" if args.read_only else ("actions need the token" if token else
                                                ("basic auth" if args.basic_auth else "actions allowed"))
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"once web: serving http://{host}:{server.server_port}/ ({mode})", flush=True)
    t = threading.Thread(target=server.serve_forever, name="once-web", daemon=True)
    t.start()
    try:
        serve_until_stopped(server, 0.5)
    finally:
        app.extensions["once_history"].stop()
    return 0
