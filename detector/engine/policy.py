"""The decision policy: what the serving tier does with a client, and whether an alert pages.

One pure function, ``decide``, with this precedence (first match wins):

1. an analyst's **block** (per client, every model): ``block``;
2. an analyst's **trust** (per client, every model): ``allow``, and its alerts never page;
3. a model in **monitor** mode: ``allow`` (detect and store, never page);
4. a **silence** matching the client, model or campaign: no paging, decision unchanged;
5. **risk thresholds** of the model (its overrides, else the static defaults): the risk is
   at least the risk of any campaign the client belongs to (a floor). The extraction
   estimate (how much of the model the client already has) acts only where the model opts
   in: it blocks at ``extraction_block`` and degrades at ``extraction_degrade``, whatever the
   risk. That caps harm, not intent: heavy benign users reach about 0.9 with natural queries;
6. across the client's models, the **strictest** decision (``block`` > ``degrade`` >
   ``allow``): a thief blocked on one model stays blocked when it queries another.

Mitigations from MITRE ATLAS: AML.M0002 (passive output obfuscation: fewer decimals of the
scores) for a suspicious client, AML.M0004 (restrict the number of queries: throttle or
refuse) for a likely thief. Nothing here does I/O: the API, the dispatcher and the serving
tier hand it what they read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

OBFUSCATE_OUTPUT = "AML.M0002"
RESTRICT_QUERIES = "AML.M0004"
ACTIONS = ("allow", "degrade", "block")
MODES = ("enforce", "monitor")


@dataclass(frozen=True)
class Thresholds:
    """Static defaults (``ApiSettings``) for every model without an override."""

    degrade_risk: float = 0.5
    block_risk: float = 0.9
    degraded_precision: int = 1


@dataclass(frozen=True)
class ModelPolicy:
    """A model's runtime policy (stored per model; every override off by default)."""

    model_id: str
    mode: str = "enforce"
    degrade_risk: float | None = None
    block_risk: float | None = None
    degraded_precision: int | None = None
    page_risk: float | None = None  # alerts page only at or above this risk (calibration)
    extraction_block: float | None = None  # block once a copy's estimated fidelity reaches this
    extraction_degrade: float | None = None  # degrade once a copy's estimated fidelity reaches this


@dataclass(frozen=True)
class Silence:
    """No paging for alerts that match every set matcher, until ``expires_ts`` (epoch seconds)."""

    silence_id: int
    expires_ts: float
    client_id: str | None = None
    model_id: str | None = None
    campaign_id: str | None = None
    reason_contains: str | None = None

    def matches(self, view: ModelView, now_ts: float) -> bool:
        if now_ts >= self.expires_ts:
            return False
        if self.client_id is not None and self.client_id != view.client_id:
            return False
        if self.model_id is not None and self.model_id != view.model_id:
            return False
        if self.campaign_id is not None and self.campaign_id not in view.campaigns:
            return False
        needle = self.reason_contains
        return needle is None or any(needle.lower() in r.lower() for r in view.reasons)


@dataclass(frozen=True)
class ModelView:
    """What is known of one client on one model."""

    client_id: str
    model_id: str
    risk: float
    reasons: tuple[str, ...] = ()
    extraction: float | None = None
    campaigns: tuple[str, ...] = ()
    campaign_risk: float = 0.0  # highest risk of a campaign the client belongs to


@dataclass(frozen=True)
class ModelDecision:
    model_id: str
    action: str
    risk: float
    reasons: tuple[str, ...]
    output_precision: int | None
    mitigations: tuple[str, ...]
    pages: bool  # whether this model's alerts for the client are delivered
    silenced_by: int | None = None


@dataclass(frozen=True)
class Decision:
    """The client's decision (strictest over its models) and each model's."""

    client_id: str
    action: str
    risk: float
    reasons: tuple[str, ...]
    output_precision: int | None
    mitigations: tuple[str, ...]
    status: str
    models: tuple[ModelDecision, ...] = field(default=())


def contradictions(policy: ModelPolicy, defaults: Thresholds) -> list[str]:
    """What ``policy`` asks (with the defaults where it sets nothing) that ``decide`` could
    never do: a degrade level above its block level degrades no one, since every client that
    reaches it has been blocked first. Equal levels are allowed: that is how a model skips
    degrading.

    >>> contradictions(ModelPolicy("m", degrade_risk=0.95), Thresholds(block_risk=0.9))
    ['degrade_risk 0.95 is above block_risk 0.9 (the default): it would degrade no one']
    >>> contradictions(ModelPolicy("m", extraction_degrade=0.9, extraction_block=0.8), Thresholds())
    ['extraction_degrade 0.9 is above extraction_block 0.8: it would degrade no one']
    >>> contradictions(ModelPolicy("m", degrade_risk=0.9, block_risk=0.9), Thresholds())
    []
    """

    def level(name: str, default: float | None) -> tuple[float | None, str]:
        value = getattr(policy, name)
        if value is None and default is not None:
            return default, f"{name} {default:g} (the default)"
        return value, f"{name} {value:g}" if value is not None else name

    problems = []
    for degrade, block, degrade_default, block_default in (
        ("degrade_risk", "block_risk", defaults.degrade_risk, defaults.block_risk),
        ("extraction_degrade", "extraction_block", None, None),
    ):
        low, low_words = level(degrade, degrade_default)
        high, high_words = level(block, block_default)
        if low is not None and high is not None and low > high:
            problems.append(f"{low_words} is above {high_words}: it would degrade no one")
    return problems


def decide(
    *,
    client_id: str,
    status: str,
    views: Sequence[ModelView],
    policies: dict[str, ModelPolicy],
    defaults: Thresholds,
    silences: Sequence[Silence] = (),
    now_ts: float = 0.0,
) -> Decision:
    """The decision for a client over all the models it queried (see the module docstring).

    >>> d = Thresholds()
    >>> hot = ModelView("acct-1", "digits-v1", 0.97)
    >>> cold = ModelView("acct-1", "credit-v1", 0.01)
    >>> decide(client_id="acct-1", status="normal", views=[hot, cold], policies={}, defaults=d).action
    'block'
    >>> decide(client_id="acct-1", status="trusted", views=[hot], policies={}, defaults=d).action
    'allow'
    >>> monitor = {"digits-v1": ModelPolicy("digits-v1", mode="monitor")}
    >>> decide(client_id="acct-1", status="normal", views=[hot], policies=monitor, defaults=d).action
    'allow'
    >>> decide(client_id="acct-1", status="blocked", views=[], policies={}, defaults=d).action
    'block'
    >>> heavy = ModelView("acct-2", "digits-v1", 0.05, extraction=0.93)
    >>> decide(client_id="acct-2", status="normal", views=[heavy], policies={}, defaults=d).action
    'allow'
    >>> capped = {"digits-v1": ModelPolicy("digits-v1", extraction_degrade=0.9)}
    >>> capped_decision = decide(
    ...     client_id="acct-2", status="normal", views=[heavy], policies=capped, defaults=d
    ... )
    >>> capped_decision.action, capped_decision.reasons[0][-42:]
    ('degrade', 'on about 93% of inputs (degrade level 90%)')
    >>> member = ModelView("acct-3", "digits-v1", 0.1, campaign_risk=0.95)
    >>> floored = decide(client_id="acct-3", status="normal", views=[member], policies={}, defaults=d)
    >>> floored.action, floored.risk
    ('block', 0.95)
    >>> ring = ModelView("acct-3", "digits-v1", 0.1, campaigns=("cp_8dd2",), campaign_risk=0.95)
    >>> decide(client_id="acct-3", status="normal", views=[ring], policies={}, defaults=d).reasons[0]
    "campaign risk 0.95 is a floor on the client's 0.10 (campaign cp_8dd2)"
    """
    per_model = tuple(
        _decide_model(
            status, v, policies.get(v.model_id) or ModelPolicy(v.model_id), defaults, silences, now_ts
        )
        for v in views
    )
    # The campaign floor counts as the thresholds read it: the risk beside a block's reason
    # "risk 0.95 >= block threshold" (and in X-Querywatch-Risk) is 0.95, not the account's own.
    risk = max((max(v.risk, v.campaign_risk) for v in views), default=0.0)
    if status == "blocked":
        return Decision(
            client_id, "block", risk, ("client is blocked",), None, (RESTRICT_QUERIES,), status, per_model
        )
    if status == "trusted":
        return Decision(client_id, "allow", risk, ("client is trusted",), None, (), status, per_model)
    strictest = max(per_model, key=lambda m: (ACTIONS.index(m.action), m.risk), default=None)
    if strictest is None:
        return Decision(client_id, "allow", 0.0, (), None, (), status, ())
    reasons = strictest.reasons
    if strictest.action != "allow" and len(per_model) > 1:
        reasons = (*reasons, f"strictest of {len(per_model)} models: {strictest.model_id}")
    return Decision(
        client_id,
        strictest.action,
        risk,
        reasons,
        strictest.output_precision,
        strictest.mitigations,
        status,
        per_model,
    )


def _decide_model(
    status: str,
    view: ModelView,
    policy: ModelPolicy,
    defaults: Thresholds,
    silences: Sequence[Silence],
    now_ts: float,
) -> ModelDecision:
    risk = max(view.risk, view.campaign_risk)
    if status == "blocked":
        return ModelDecision(
            view.model_id, "block", risk, ("client is blocked",), None, (RESTRICT_QUERIES,), True
        )
    if status == "trusted":
        return ModelDecision(view.model_id, "allow", risk, ("client is trusted",), None, (), False)
    if policy.mode == "monitor":
        return ModelDecision(view.model_id, "allow", risk, ("model is in monitor mode",), None, (), False)
    silence = next((s for s in silences if s.matches(view, now_ts)), None)
    silenced_by = None if silence is None else silence.silence_id
    pages = silence is None and (policy.page_risk is None or risk >= policy.page_risk)
    reasons = view.reasons
    if view.campaign_risk > view.risk:
        reasons = (
            *reasons,
            f"campaign risk {view.campaign_risk:.2f} is a floor on the client's {view.risk:.2f}"
            + (f" (campaign {', '.join(view.campaigns)})" if view.campaigns else ""),
        )
    block_at = defaults.block_risk if policy.block_risk is None else policy.block_risk
    degrade_at = defaults.degrade_risk if policy.degrade_risk is None else policy.degrade_risk
    precision = (
        defaults.degraded_precision if policy.degraded_precision is None else policy.degraded_precision
    )
    if _reaches(view.extraction, policy.extraction_block):
        why = f"estimated extraction {view.extraction:.2f} >= block level {policy.extraction_block:.2f}"
        return ModelDecision(
            view.model_id, "block", risk, (*reasons, why), None, (RESTRICT_QUERIES,), pages, silenced_by
        )
    if risk >= block_at:
        why = f"risk {risk:.2f} >= block threshold {block_at:.2f}"
        return ModelDecision(
            view.model_id, "block", risk, (*reasons, why), None, (RESTRICT_QUERIES,), pages, silenced_by
        )
    whys = []
    if risk >= degrade_at:
        whys.append(f"risk {risk:.2f} >= degrade threshold {degrade_at:.2f}")
    if _reaches(view.extraction, policy.extraction_degrade):
        whys.append(
            f"a copy trained on this client's answers would already agree with the model on about "
            f"{view.extraction:.0%} of inputs (degrade level {policy.extraction_degrade:.0%})"
        )
    if whys:
        return ModelDecision(
            view.model_id,
            "degrade",
            risk,
            (*reasons, *whys),
            precision,
            (OBFUSCATE_OUTPUT, RESTRICT_QUERIES),
            pages,
            silenced_by,
        )
    return ModelDecision(view.model_id, "allow", risk, reasons, None, (), pages, silenced_by)


def _reaches(extraction: float | None, level: float | None) -> bool:
    """Whether the model opted in to an extraction level and the client's estimate reached it."""
    return level is not None and extraction is not None and extraction >= level
