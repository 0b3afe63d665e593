"""Grouping keys of a client: what its events say about who runs it, bounded and maybe hashed.

Accounts of one campaign often share an address range, a user agent or an owner. These keys
are kept only as *support* for a link the behaviour already made (``campaigns.linking``):
in a large organisation, or behind one proxy, many honest accounts share them too.

* an IP address becomes its network: ``/24`` for IPv4, ``/48`` for IPv6 (a proxy cluster
  or a cloud range, not a host);
* a user agent is kept as sent (``MAX_SOURCE`` characters at most, see ``events``);
* ``meta.org`` (else ``meta.account_owner``) names the organisation the serving tier knows.

With ``campaigns.key_salt`` set, each key is replaced by a keyed 64-bit hash (hex): equal keys
still match, and neither summaries nor campaign reasons carry addresses or names.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

#: Keys of each kind a summary carries (the most recent distinct ones), and their longest form.
MAX_KEYS = 4
MAX_KEY_CHARS = 64


@lru_cache(maxsize=1 << 14)
def ip_prefix(ip: str) -> str | None:
    """The network of an address: /24 (IPv4) or /48 (IPv6); None if it is not an address.
    Cached: a client's few addresses come back in every summary, and parsing costs more
    than the rest of a summary.

    >>> ip_prefix("203.0.113.7"), ip_prefix("2001:db8:1:2::5"), ip_prefix("proxy-7")
    ('203.0.113.0/24', '2001:db8:1::/48', None)
    """
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return None
    bits = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{bits}", strict=False))


@dataclass(frozen=True, slots=True)
class GroupingKeys:
    """One client's keys: networks, user agents and organisation (hashed or not)."""

    networks: tuple[str, ...] = ()
    user_agents: tuple[str, ...] = ()
    org: str | None = None

    @classmethod
    def of(
        cls, ips: Iterable[str], user_agents: Iterable[str], org: str | None, *, salt: str | None = None
    ) -> GroupingKeys:
        """Keys from a client's recent sources (most recent last) and its organisation; with a
        ``salt`` every key is hashed. A client with none gets the one shared ``NO_KEYS``
        (most clients name no source: 56 bytes each in the campaign stage otherwise).

        >>> k = GroupingKeys.of(["203.0.113.7", "203.0.113.9"], ["curl/8"], "acme")
        >>> k.networks, k.user_agents, k.org
        (('203.0.113.0/24',), ('curl/8',), 'acme')
        >>> GroupingKeys.of(["203.0.113.7"], [], "acme", salt="s").org != "acme"
        True
        """
        networks = _recent(p for p in (ip_prefix(ip) for ip in ips) if p is not None)
        agents = _recent(a[:MAX_KEY_CHARS] for a in user_agents)
        org = None if org is None else org[:MAX_KEY_CHARS]
        if not networks and not agents and org is None:
            return NO_KEYS
        if salt is not None:
            return cls(
                tuple(_hash(n, salt) for n in networks),
                tuple(_hash(a, salt) for a in agents),
                None if org is None else _hash(org, salt),
            )
        return cls(networks, agents, org)

    @classmethod
    def stored(cls, networks: Iterable[str], user_agents: Iterable[str], org: str | None) -> GroupingKeys:
        """Keys as a summary stored them (cut, and hashed if they were): the shared
        ``NO_KEYS`` when there are none, as ``of`` gives them.

        >>> GroupingKeys.stored([], [], None) is NO_KEYS
        True
        """
        keys = cls(tuple(networks), tuple(user_agents), org)
        return NO_KEYS if keys == NO_KEYS else keys

    def shared_with(self, other: GroupingKeys) -> list[str]:
        """The kinds of key both clients have in common, in words.

        >>> a = GroupingKeys(("198.51.100.0/24",), ("curl/8",), "acme")
        >>> a.shared_with(GroupingKeys(("198.51.100.0/24",), ("Go/1",), "acme"))
        ['network', 'organisation']
        """
        shared = []
        if set(self.networks) & set(other.networks):
            shared.append("network")
        if set(self.user_agents) & set(other.user_agents):
            shared.append("user agent")
        if self.org is not None and self.org == other.org:
            shared.append("organisation")
        return shared


NO_KEYS = GroupingKeys()
"""The keys of a client whose events named no source and no organisation."""


def remember_recent(seen: list[str], value: str, limit: int) -> None:
    """Add ``value`` to ``seen``, the last ``limit`` distinct values, most recent last.

    >>> seen = ["a", "b"]
    >>> remember_recent(seen, "a", 2); seen
    ['b', 'a']
    >>> remember_recent(seen, "c", 2); seen
    ['a', 'c']
    """
    if seen and seen[-1] == value:
        return
    if value in seen:
        seen.remove(value)
    seen.append(value)
    if len(seen) > limit:
        del seen[0]


def _recent(values: Iterable[str]) -> tuple[str, ...]:
    """The last ``MAX_KEYS`` distinct values, most recent last."""
    out: list[str] = []
    for value in values:
        remember_recent(out, value, MAX_KEYS)
    return tuple(out)


def _hash(value: str, salt: str) -> str:
    return hashlib.blake2b(value.encode(), key=salt.encode()[:64], digest_size=8).hexdigest()
