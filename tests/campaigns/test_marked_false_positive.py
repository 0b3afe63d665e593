"""A campaign an analyst marks a false positive (through the API, in the database) stays
ended: the process running the stage (``querywatch up``'s consumer, the aggregator) ends it
in its stage at its next write, instead of storing it as active again; its alert, resolved by
the mark, stays the analyst's."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from querywatch.detector.adapters.db.campaign_store import InProcessCampaigns
from querywatch.detector.adapters.db.campaigns import campaign_floors, mark_false_positive
from querywatch.detector.adapters.db.session import make_engine, make_sessionmaker, transaction
from querywatch.detector.adapters.db.tables import CampaignMemberRow, CampaignRow
from querywatch.detector.engine.outcomes import ALERT_CLOSED
from tests.campaigns.test_membership import _link, _stage
from tests.storage.databases import migrated_database


def _mark(sessions: sessionmaker[Session], campaign_id: str, *, false_positive: bool) -> None:
    """An analyst's verdict through the API's store function, in its own transaction."""
    with transaction(sessions) as session:
        mark_false_positive(
            session=session,
            campaign_id=campaign_id,
            actor="analyst",
            false_positive=false_positive,
            note=None,
        )


def test_a_campaign_marked_false_positive_is_not_stored_as_active_again(profile, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    stage, model = _stage(profile)
    store = InProcessCampaigns(stage)
    with migrated_database("sqlite", tmp_path) as settings:
        database = make_engine(settings.database)
        sessions = make_sessionmaker(database)
        store._events += _link(stage, model, "a", "b", 10.0)
        [campaign] = stage.campaigns("m")
        with transaction(sessions) as session:
            store.write(session)
        store.committed()
        _mark(sessions, campaign.campaign_id, false_positive=True)
        store._events += _link(stage, model, "b", "c", 11.0)  # the stage goes on linking
        with transaction(sessions) as session:
            saved = store.write(session)
        store.committed()
        assert stage.campaigns("m") == []
        assert campaign.campaign_id in model.dismissed and store.dismissed_models == set()
        assert [e.event.type for e in saved.events][-1:] == [ALERT_CLOSED]
        [closed] = [e.alert for e in saved.events if e.event.type == ALERT_CLOSED]
        # The mark resolved the alert; the stage's closing keeps the analyst's resolution.
        assert (closed.state, closed.resolved_by, closed.false_positive) == ("resolved", "analyst", True)
        assert closed.closed_by_engine_at is not None
        with database.connect() as c:
            row = c.execute(select(CampaignRow.state, CampaignRow.false_positive)).one()
            members = c.execute(select(CampaignMemberRow.client_id)).all()
        assert tuple(row) == ("ended", True)
        assert sorted(m for (m,) in members) == ["a", "b"]  # kept: `?client_id=` finds past campaigns
        assert campaign_floors(session=sessions(), client_ids=["a", "b"]) == {}  # no floor once ended

        # The mark taken back: the ring links again from its next summaries.
        _mark(sessions, campaign.campaign_id, false_positive=False)
        with transaction(sessions) as session:
            store.write(session)
        assert campaign.campaign_id not in model.dismissed and store.dismissed_models == {"m"}
        store.committed()
        _link(stage, model, "a", "b", 20.0)
        assert [c.campaign_id for c in stage.campaigns("m")] == [campaign.campaign_id]
        database.dispose()


def test_a_campaign_whose_members_stopped_changing_is_stored_again_as_its_evidence_grows(
    profile, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Only a change of members or risk rewrote a campaign: once both had settled, the row
    kept that moment's links and evidence while the stage's grew (55 links stored, 59 live)."""
    stage, model = _stage(profile)
    store = InProcessCampaigns(stage)
    with migrated_database("sqlite", tmp_path) as settings:
        database = make_engine(settings.database)
        sessions = make_sessionmaker(database)
        store._events += _link(stage, model, "a", "b", 10.0) + _link(stage, model, "b", "c", 11.0)
        with transaction(sessions) as session:
            store.write(session)
        store.committed()
        assert not store.pending()
        store._events += _link(stage, model, "a", "c", 12.0)  # the same three accounts, one link more
        [campaign] = stage.campaigns("m")
        assert campaign.members == ["a", "b", "c"] and len(campaign.links) == 3
        assert store.pending()
        with transaction(sessions) as session:
            store.write(session)
        store.committed()
        with database.connect() as c:
            links = c.execute(select(CampaignRow.links)).scalar_one()
        assert len(links) == 3
        database.dispose()
