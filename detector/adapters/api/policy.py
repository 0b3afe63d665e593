"""What the serving tier should do with a client's next request.

Mitigations from MITRE ATLAS: AML.M0002 (passive AI output obfuscation: return fewer
decimals of the scores) for a suspicious client, AML.M0004 (restrict number of AI model
queries: throttle or refuse) for a likely thief. A trusted client is always allowed (it
is still scored), a blocked one always refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from querywatch.detector.config import ApiSettings

OBFUSCATE_OUTPUT = "AML.M0002"
RESTRICT_QUERIES = "AML.M0004"


@dataclass(frozen=True)
class Decision:
    action: str  # allow | degrade | block
    risk: float
    reasons: tuple[str, ...]
    output_precision: int | None
    mitigations: tuple[str, ...]
    status: str


def decide(*, risk: float, reasons: tuple[str, ...], status: str, policy: ApiSettings) -> Decision:
    """Apply the policy thresholds to one client's risk and status.

    >>> p = ApiSettings(degrade_risk=0.5, block_risk=0.9, degraded_precision=1)
    >>> [decide(risk=r, reasons=(), status="normal", policy=p).action for r in (0.1, 0.6, 0.95)]
    ['allow', 'degrade', 'block']
    >>> decide(risk=0.99, reasons=(), status="trusted", policy=p).action
    'allow'
    """
    if status == "trusted":
        return Decision("allow", risk, (*reasons, "client is trusted"), None, (), status)
    if status == "blocked":
        return Decision("block", risk, (*reasons, "client is blocked"), None, (RESTRICT_QUERIES,), status)
    if risk >= policy.block_risk:
        why = f"risk {risk:.2f} >= block threshold {policy.block_risk:.2f}"
        return Decision("block", risk, (*reasons, why), None, (RESTRICT_QUERIES,), status)
    if risk >= policy.degrade_risk:
        why = f"risk {risk:.2f} >= degrade threshold {policy.degrade_risk:.2f}"
        return Decision(
            "degrade",
            risk,
            (*reasons, why),
            policy.degraded_precision,
            (OBFUSCATE_OUTPUT, RESTRICT_QUERIES),
            status,
        )
    return Decision("allow", risk, reasons, None, (), status)
