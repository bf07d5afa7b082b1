"""Alerts: e-mail and a webhook when a task fails or the data needs someone's eyes.

What is reported (each message says what, which file/table/rule, how many rows, where to look):

- a task that failed (any DAG), with the error;
- a batch that was quarantined or rejected, and rows quarantined out of a loaded batch
  (``audit.load_batches``), with the expectations that failed (``audit.validation_results``);
- a failed critical expectation (the batch is quarantined and the task fails) and a failed
  warning expectation (the batch loads; the alert says so);
- a dbt test that warned or failed (dbt's ``run_results.json``, kept by :func:`keep_dbt_results`);
- case management with no rows loaded for longer than ``ALERT_FRESHNESS_HOURS`` (checked by its
  hourly extraction, so it repeats every hour until rows arrive; assessment exports arrive twice a
  year and are not checked).

Critical problems already fail their task (the loader and dbt raise); warnings alert without
failing anything. The findings are read from the audit tables for the batches the task itself
wrote (started after the task did, of the task's source), so the loader is not involved.

Channels, from the environment (include/config.py): SMTP (``ALERT_SMTP_URL`` or
``ALERT_SMTP_HOST``/``_PORT``/``_USER``/``_PASSWORD``, ``ALERT_EMAIL_FROM``, ``ALERT_EMAIL_TO``) and a
Slack/Teams-compatible webhook (``ALERT_WEBHOOK_URL``, JSON ``{"text": ...}``). Unset: no alert.

Wired in include/orchestration/dag_defaults.py as task callbacks (``on_failure_callback``,
``on_success_callback``) of every task, and Cosmos' ``callback`` of the dbt task.
Nothing heavy is imported at module level: DAG files import this module at parse time.
"""

from __future__ import annotations

import json
import logging
import shutil
import smtplib
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from airflow.sdk import BaseNotifier

from include.config import Settings, settings

log = logging.getLogger(__name__)

MAX_FINDINGS = 20
"""Beyond this many findings a message says how many more there are."""


@dataclass(frozen=True)
class Finding:
    """One thing someone should look at."""

    severity: str  # 'critical' or 'warning'
    what: str  # e.g. "batch quarantined", "dbt test failed"
    where: str  # file, table or model, and the rule
    rows: int | None
    look: str  # where to look (a query, a file)
    detail: str = ""

    def line(self) -> str:
        rows = "" if self.rows is None else f"; {self.rows:,} row{'s' if self.rows != 1 else ''}"
        detail = f" ({self.detail})" if self.detail else ""
        return f"- [{self.severity.upper()}] {self.what}: {self.where}{rows}{detail}. Look: {self.look}"


# ----------------------------------------------------------------------------- findings


def batch_findings(
    warehouse_url: str, since: datetime, source: str | None = None, source_object: str | None = None
) -> list[Finding]:
    """Quarantined/rejected batches, quarantined rows and failed expectations of the batches
    started at or after ``since`` (optionally of one source and source object)."""
    from include import db

    where = ["b.started_at >= %(since)s"]
    if source:
        where.append("b.source = %(source)s")
    if source_object:
        where.append("b.source_object = %(source_object)s")
    params = {"since": since, "source": source, "source_object": source_object}
    findings: list[Finding] = []
    with db.connect(warehouse_url) as conn:
        batches = conn.execute(
            f"""select b.batch_id, b.source_object, b.status, b.rows_read, b.rows_quarantined, b.message
                from audit.load_batches b
                where {" and ".join(where)}
                  and (b.status in ('quarantined', 'rejected') or b.rows_quarantined > 0)
                order by b.batch_id""",
            params,
        ).fetchall()
        for batch_id, obj, status, read, quarantined, message in batches:
            look = (
                f"select * from quarantine.rejected_rows where batch_id = {batch_id}; "
                f"audit.load_batches and audit.validation_results, batch_id {batch_id}"
            )
            if status in ("quarantined", "rejected"):
                rows = quarantined or read
                what = f"batch {status}"
                findings.append(Finding("critical", what, obj, rows, look, _first_line(message)))
            else:
                findings.append(Finding("warning", "rows quarantined", obj, quarantined, look))
        expectations = conn.execute(
            f"""select b.batch_id, b.source_object, b.status, v.suite, v.expectation, v.severity,
                       v.unexpected_count, v.details
                from audit.validation_results v join audit.load_batches b using (batch_id)
                where {" and ".join(where)} and not v.success
                order by v.severity, b.batch_id, v.expectation""",
            params,
        ).fetchall()
    for batch_id, obj, status, suite, rule, severity, unexpected, details in expectations:
        loaded = "batch quarantined" if status == "quarantined" else "batch loaded"
        findings.append(
            Finding(
                "critical" if severity == "critical" else "warning",
                f"{severity} expectation failed ({loaded})",
                f"{obj}, rule '{rule}' of suite {suite}",
                unexpected,
                f"audit.validation_results where batch_id = {batch_id}; Great Expectations Data Docs",
                _first_line(details),
            )
        )
    return findings


def dbt_findings(run_results: dict, results_path: Path | str | None = None) -> list[Finding]:
    """dbt tests (data and unit tests) that warned, failed or errored, from ``run_results.json``."""
    findings = []
    for result in run_results.get("results", []):
        node = result.get("unique_id", "")
        status = result.get("status")
        if not node.startswith(("test.", "unit_test.")) or status not in ("warn", "fail", "error"):
            continue
        severity = "warning" if status == "warn" else "critical"
        failures = result.get("failures")
        look = f"dbt's run_results.json: {results_path}" if results_path else "the dbt task's log"
        findings.append(
            Finding(
                severity,
                f"dbt test {'warned' if status == 'warn' else 'failed' if status == 'fail' else 'errored'}",
                node.split(".", 2)[-1] if node.count(".") >= 2 else node,
                failures,
                look + f"; `dbt test --select {node.split('.')[-1]}` in dbt_project/ to see the rows",
                _first_line(result.get("message")),
            )
        )
    return findings


def freshness_findings(warehouse_url: str, hours: float, source: str | None = None) -> list[Finding]:
    """Sources whose last batch with rows loaded finished more than ``hours`` ago."""
    from include import db

    with db.connect(warehouse_url) as conn:
        rows = conn.execute(
            """select source, max(finished_at), now() - max(finished_at)
               from audit.load_batches
               where status = 'loaded' and rows_loaded > 0
                 and (%(source)s::text is null or source = %(source)s)
               group by source""",
            {"source": source},
        ).fetchall()
    return [
        Finding(
            "warning",
            "source past its freshness SLA",
            f"{src} (last rows loaded {last:%Y-%m-%d %H:%M} UTC)",
            None,
            "audit.load_batches; is the source still exporting? (ALERT_FRESHNESS_HOURS)",
            f"nothing new for {age.total_seconds() / 3600:.0f} h, SLA {hours:g} h",
        )
        for src, last, age in rows
        if age > timedelta(hours=hours)
    ]


def _first_line(text: str | None, limit: int = 300) -> str:
    text = (text or "").strip().splitlines()
    return (text[0][:limit] + ("…" if len(text[0]) > limit else "")) if text else ""


# ----------------------------------------------------------------------------- messages


def compose(title: str, findings: list[Finding], context_lines: list[str]) -> tuple[str, str]:
    """Subject and plain-text body."""
    critical = sum(f.severity == "critical" for f in findings)
    warnings = len(findings) - critical
    counts = ", ".join(
        p
        for p in (f"{critical} critical" if critical else "", f"{warnings} warning(s)" if warnings else "")
        if p
    )
    subject = f"[Better Work data] {title}" + (f" ({counts})" if counts else "")
    lines = [subject, "", *context_lines]
    if findings:
        lines += ["", "Findings:"]
        lines += [f.line() for f in findings[:MAX_FINDINGS]]
        if len(findings) > MAX_FINDINGS:
            lines.append(f"- … and {len(findings) - MAX_FINDINGS} more (see the audit tables)")
    return subject, "\n".join(lines)


def send(subject: str, text: str, cfg: Settings | None = None) -> list[str]:
    """Send to every configured channel; return which were used. A channel that fails is logged,
    never raised: an alert must not fail the pipeline."""
    cfg = cfg or settings()
    sent = []
    if cfg.alert_smtp_url and cfg.alert_email_to:
        try:
            send_email(cfg.alert_smtp_url, cfg.alert_email_from, cfg.alert_email_to, subject, text)
            sent.append("email")
        except Exception:
            log.exception("alert e-mail to %s failed", ", ".join(cfg.alert_email_to))
    if cfg.alert_webhook_url:
        try:
            post_webhook(cfg.alert_webhook_url, text)
            sent.append("webhook")
        except Exception:
            log.exception("alert webhook failed")
    return sent


def send_email(smtp_url: str, sender: str, to: tuple[str, ...], subject: str, text: str) -> None:
    """``smtp://user:password@host:port`` (``?starttls=1``), or ``smtps://`` for implicit TLS."""
    url = urlsplit(smtp_url)
    msg = EmailMessage()
    msg["Subject"], msg["From"], msg["To"] = subject, sender, ", ".join(to)
    msg.set_content(text)
    if url.scheme == "smtps":
        smtp = smtplib.SMTP_SSL(url.hostname, url.port or 465, timeout=20)
    else:
        smtp = smtplib.SMTP(url.hostname, url.port or 25, timeout=20)
    with smtp:
        if url.scheme != "smtps" and parse_qs(url.query).get("starttls", ["0"])[0] in ("1", "true"):
            smtp.starttls()
        if url.username:
            smtp.login(unquote(url.username), unquote(url.password or ""))
        smtp.send_message(msg)


def post_webhook(url: str, text: str) -> None:
    """POST ``{"text": ...}``: what Slack and Teams (and Mattermost, Rocket.Chat) incoming webhooks take."""
    req = urllib.request.Request(
        url, data=json.dumps({"text": text}).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=20) as r:
        r.read()


# ----------------------------------------------------------------------------- Airflow side


def _results_dir(dag_id: str, run_id: str) -> Path:
    from include.orchestration.airflow_env import results_root

    return results_root(settings()) / f"dag_id={dag_id}" / f"run_id={run_id.replace('/', '_')}"


def keep_dbt_results(project_dir: str, context=None, **_) -> None:
    """Cosmos' ``callback``: keep the run's ``run_results.json`` (Cosmos runs dbt in a temporary
    copy of the project) beside Airflow's logs, for the alert and for people."""
    try:
        source = Path(project_dir) / "target" / "run_results.json"
        if context is None or not source.exists():
            return
        ti = context["ti"]
        target = _results_dir(ti.dag_id, ti.run_id) / f"{ti.task_id}.run_results.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    except Exception:
        log.exception("could not keep dbt's run_results.json")


def _task_link(cfg: Settings, dag_id: str, run_id: str, task_id: str) -> str:
    from urllib.parse import quote

    return f"{cfg.airflow_url}/dags/{dag_id}/runs/{quote(run_id, safe='')}/tasks/{task_id}"


def task_findings(context, cfg: Settings) -> list[Finding]:
    """What the finished task left to look at: its batches' problems, its dbt tests, freshness."""
    from include.orchestration import connections

    ti = context["ti"]
    task_id = ti.task_id
    findings: list[Finding] = []
    since = (ti.start_date or datetime.now(UTC)) - timedelta(seconds=1)
    source, source_object = None, None
    if task_id == "load_exports":
        source = "assessment_exports"
    elif task_id.startswith("load_"):
        source, source_object = "case_management", f"public.{task_id.removeprefix('load_')}"
    if source:
        url = connections.warehouse_url()
        findings += batch_findings(url, since, source, source_object)
        if source_object == "public.factories":  # once per run of the hourly case-management source
            findings += freshness_findings(url, cfg.alert_freshness_hours, source)
    results = _results_dir(ti.dag_id, ti.run_id) / f"{task_id}.run_results.json"
    if results.exists():
        findings += dbt_findings(json.loads(results.read_text()), results)
    return findings


class PipelineNotifier(BaseNotifier):
    """Task callback: on failure, always alerts (with what the task's data showed); on success,
    alerts only if the task's batches or dbt tests left warnings."""

    def __init__(self, on: str = "failure"):
        super().__init__()
        self.on = on

    def notify(self, context) -> None:
        try:
            self._notify(context)
        except Exception:  # never let an alert fail or mask the task's own outcome
            log.exception("alert failed")

    def _notify(self, context) -> None:
        cfg = settings()
        if not ((cfg.alert_smtp_url and cfg.alert_email_to) or cfg.alert_webhook_url):
            return
        ti = context["ti"]
        findings = task_findings(context, cfg)
        if self.on == "success" and not findings:
            return
        context_lines = [
            f"DAG {ti.dag_id}, task {ti.task_id}, run {ti.run_id}, try {getattr(ti, 'try_number', '?')}",
            f"Airflow: {_task_link(cfg, ti.dag_id, ti.run_id, ti.task_id)} (the task's log)",
        ]
        if self.on == "failure":
            error = context.get("exception")
            title = f"{ti.dag_id}.{ti.task_id} FAILED"
            if error:
                context_lines.append(f"Error: {_first_line(str(error), 1000)}")
        else:
            title = f"{ti.dag_id}.{ti.task_id} succeeded with data-quality warnings"
        subject, text = compose(title, findings, context_lines)
        sent = send(subject, text, cfg)
        log.info("alert %r sent to %s", subject, ", ".join(sent) or "no channel")
