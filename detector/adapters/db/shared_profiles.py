"""Reference profiles shared by every consumer of a group, through the database.

With no profile directory configured, each model's profile is built from its first events
(warm-up). N consumers each see only their partitions' events, so they would build N
different profiles; storing the first one built in ``model_profiles`` and having everyone
use the stored one makes the group agree. First writer wins: a consumer that finished its
own warm-up later adopts the stored profile instead of its own. A refresh is a new row,
version ``revision + 1``, with the same rule: the first consumer to store a revision
defines it, the others adopt it at their next drift check (``latest``).
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from querywatch.detector.adapters.db.profiles import latest_profile, latest_version, save_profile
from querywatch.detector.adapters.db.session import transaction
from querywatch.models.profile import ReferenceProfile


def row_version(profile: ReferenceProfile) -> int:
    """The ``model_profiles.version`` of a profile: 1 for a fit, one more per refresh."""
    return profile.revision + 1


class DatabaseProfileStore:
    """``ProfileStore`` over the ``model_profiles`` table (first writer wins)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._cache: dict[str, ReferenceProfile] = {}

    def get(self, model_id: str) -> ReferenceProfile | None:
        profile = self._cache.get(model_id)
        if profile is None:
            with transaction(self._sessions) as session:
                row = latest_profile(session=session, model_id=model_id)
                blob = None if row is None else bytes(row.blob)
            if blob is not None:
                profile = self._cache[model_id] = ReferenceProfile.from_bytes(blob)
        return profile

    def latest(self, model_id: str) -> ReferenceProfile | None:
        cached = self._cache.get(model_id)
        if cached is not None:
            with transaction(self._sessions) as session:
                newest = latest_version(session=session, model_id=model_id)
            if newest is None or newest <= row_version(cached):
                return cached
            del self._cache[model_id]
        return self.get(model_id)

    def put(self, profile: ReferenceProfile) -> None:
        try:
            with transaction(self._sessions) as session:
                save_profile(
                    session=session,
                    model_id=profile.model_id,
                    version=row_version(profile),
                    dim=profile.dim,
                    blob=profile.to_bytes(),
                )
        except IntegrityError:
            self._cache.pop(profile.model_id, None)  # another consumer stored one first: use theirs
            return
        self._cache[profile.model_id] = profile
