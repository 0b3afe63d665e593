"""Reference profiles shared by every consumer of a group, through the database.

With no profile directory configured, each model's profile is built from its first events
(warm-up). N consumers each see only their partitions' events, so they would build N
different profiles; storing the first one built in ``model_profiles`` and having everyone
use the stored one makes the group agree. First writer wins: a consumer that finished its
own warm-up later adopts the stored profile instead of its own. A refresh is a new row,
the next version, with the same rule: the first consumer to store a revision defines it,
the others adopt it at their next drift check (``latest``).

A trusted profile read from a file (``detection.profile_dir``) goes through the same table:
the first consumer to need the model stores it as the next version, unless the newest
stored one already descends from it (the same fit, maybe refreshed or completed with live
answers since). So the group shares its refreshes, a restart resumes the newest, the
directory is only read (a read-only volume serves), and ``GET /v1/models`` shows the
trusted profile's figures as it shows a warm-up's.
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from querywatch.detector.adapters.db.profiles import latest_profile, latest_version, save_profile
from querywatch.detector.adapters.db.session import transaction
from querywatch.detector.engine.profiles import ProfileStore
from querywatch.models.profile import ReferenceProfile


class DatabaseProfileStore:
    """``ProfileStore`` over the ``model_profiles`` table (first writer wins), seeded from
    ``trusted`` (the profile directory's store) where it holds the model."""

    def __init__(self, sessions: sessionmaker[Session], trusted: ProfileStore | None = None) -> None:
        self._sessions = sessions
        self._trusted = trusted
        self._cache: dict[str, tuple[int, ReferenceProfile]] = {}
        """Per model, the profile in use and its row's version."""
        self._seeded: set[str] = set()

    def get(self, model_id: str) -> ReferenceProfile | None:
        if model_id not in self._cache:
            self._read(model_id)
            if model_id not in self._seeded:
                self._seeded.add(model_id)
                self._seed(model_id)
        cached = self._cache.get(model_id)
        return None if cached is None else cached[1]

    def latest(self, model_id: str) -> ReferenceProfile | None:
        cached = self._cache.get(model_id)
        if cached is not None:
            with transaction(self._sessions) as session:
                newest = latest_version(session=session, model_id=model_id)
            if newest is None or newest <= cached[0]:
                return cached[1]
            del self._cache[model_id]
        return self.get(model_id)

    def put(self, profile: ReferenceProfile) -> None:
        """Store a fit as version 1, or a revision of the fit in use after its row."""
        cached = self._cache.get(profile.model_id)
        if cached is not None and cached[1].version == profile.version:
            version = cached[0] + profile.revision - cached[1].revision
        else:
            version = 1 + profile.revision
        if not self._insert(profile, version):
            self._cache.pop(profile.model_id, None)  # another consumer stored one first: use theirs

    def _read(self, model_id: str) -> None:
        with transaction(self._sessions) as session:
            row = latest_profile(session=session, model_id=model_id)
            stored = None if row is None else (row.version, bytes(row.blob))
        if stored is not None:
            self._cache[model_id] = (stored[0], ReferenceProfile.from_bytes(stored[1]))

    def _seed(self, model_id: str) -> None:
        """Store the trusted file's profile after the newest row, unless that row descends from it."""
        trusted = None if self._trusted is None else self._trusted.get(model_id)
        if trusted is None:
            return
        cached = self._cache.get(model_id)
        if cached is not None and cached[1].version == trusted.version:
            return
        if not self._insert(trusted, 1 if cached is None else cached[0] + 1):
            self._cache.pop(model_id, None)
            self._read(model_id)  # the group's other consumers stored it (or another) first

    def _insert(self, profile: ReferenceProfile, version: int) -> bool:
        """Add ``profile`` as ``version`` and use it; False if that version exists already."""
        try:
            with transaction(self._sessions) as session:
                save_profile(
                    session=session,
                    model_id=profile.model_id,
                    version=version,
                    dim=profile.dim,
                    blob=profile.to_bytes(),
                )
        except IntegrityError:
            return False
        self._cache[profile.model_id] = (version, profile)
        return True
