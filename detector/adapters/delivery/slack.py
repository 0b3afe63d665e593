"""A Slack incoming-webhook message for one alert event or notice, within Slack's limits.

Block Kit limits that matter here: a ``header`` block's text is at most 150 characters, a
``section`` text at most 3,000, a ``context`` element's at most 2,000, and a message holds at
most 50 blocks; ``text`` is the notification fallback (kept short). Every text is cut to fit,
so a long list of reasons can never make Slack refuse the message.
"""

from __future__ import annotations

from typing import Any

HEADER_LIMIT = 150
SECTION_LIMIT = 3000
CONTEXT_LIMIT = 2000
TEXT_LIMIT = 3000
_VERB = {"alert.opened": "opened", "alert.updated": "updated", "alert.closed": "closed"}


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def message(event: dict[str, Any], links: dict[str, str]) -> dict[str, Any]:
    """The message body.

    >>> m = message({"type": "alert.opened", "severity": "high", "subject_id": "acct-1", "kind": "client",
    ...              "model_id": "m", "risk": 0.97, "decision": "block", "reasons": ["x" * 5000]},
    ...             {"alert": "http://qw/v1/alerts/al_1"})
    >>> [len(b["text"]["text"]) <= 3000 for b in m["blocks"] if b["type"] == "section"]
    [True]
    """
    verb = _VERB.get(event["type"], event["type"])
    title = (
        f"{event['severity'].upper()} model extraction {verb}: {event.get('kind', 'client')} "
        f"{event['subject_id']} on {event['model_id']}"
    )
    reasons = "\n".join(f"• {_escape(r)}" for r in event.get("reasons") or [])
    facts = f"*risk* {event['risk']:.2f}   *decision* {event.get('decision') or 'n/a'}"
    if event.get("extraction") is not None:
        facts += f"   *extraction* {event['extraction']:.2f}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(title, HEADER_LIMIT)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _cut(f"{facts}\n{reasons}", SECTION_LIMIT)}},
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": _cut(f"<{href}|{name}>", CONTEXT_LIMIT)}
                for name, href in links.items()
            ],
        },
    ]
    return {"text": _cut(title, TEXT_LIMIT), "blocks": blocks}


def notice(body: dict[str, Any], links: dict[str, str]) -> dict[str, Any]:
    """The message of a notice: a silence's announcement or a monitor-mode digest.

    >>> digest = {"type": "monitor.digest", "model_id": "m", "day": "2026-11-28", "alerts_count": 400,
    ...           "alerts": [{"severity": "high", "subject_id": "a" * 300, "peak_risk": 0.97}] * 100}
    >>> m = notice(digest, {"alerts": "http://qw/v1/alerts?model=m"})
    >>> m["text"], all(len(b["text"]["text"]) <= 3000 for b in m["blocks"] if b["type"] == "section")
    ('Monitor mode digest for m on 2026-11-28: 400 alerts would have paged', True)
    """
    if body["type"] == "monitor.digest":
        count = body["alerts_count"]
        title = (
            f"Monitor mode digest for {body['model_id']} on {body['day']}: "
            f"{count} alert{'' if count == 1 else 's'} would have paged"
        )
        lines = [
            f"• {a['severity']} {_escape(a['subject_id'])} (peak risk {a['peak_risk']:.2f})"
            for a in body["alerts"]
        ]
        if count > len(lines):
            lines.append(f"… and {count - len(lines)} more")
        detail = "\n".join(lines) or "Nothing would have paged."
    else:
        silence = body["silence"]
        matchers = ", ".join(f"{k} {v}" for k, v in silence["matchers"].items())
        title = f"Silence #{silence['id']} created by {silence['created_by']}: {matchers}"
        detail = f"{_escape(silence['comment'])}\n*until* {silence['expires_at']}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(title, HEADER_LIMIT)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _cut(detail, SECTION_LIMIT)}},
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": _cut(f"<{href}|{name}>", CONTEXT_LIMIT)}
                for name, href in links.items()
            ],
        },
    ]
    return {"text": _cut(title, TEXT_LIMIT), "blocks": blocks}
