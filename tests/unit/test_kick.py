"""The kick lifecycle table: every rule, then random input sequences against its promises."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.core import kick
from agent.core.acks import AckStatus
from agent.core.kick import Phase, Track

DEADLINE = 100.0


def at(phase: Phase, attempts: int = 0) -> Track:
    return Track(phase, DEADLINE, attempts)


# (phase, attempts, input, now) -> (next phase, action type, status or None, attempts)
CASES = [
    ("claimed, to be pulsed", at(Phase.RECEIVED), kick.Claimed(), 1.0,
     Phase.PENDING, kick.Queue, None, 0),
    ("claimed, ignored at once", at(Phase.RECEIVED), kick.Claimed(AckStatus.IGNORED, "why"), 1.0,
     Phase.FINAL, kick.Finish, AckStatus.IGNORED, 0),
    ("duplicate of a final event", at(Phase.RECEIVED),
     kick.Known(Track(Phase.FINAL, DEADLINE, 1, AckStatus.OPENED)), 1.0,
     Phase.RECEIVED, kick.Answer, AckStatus.DUPLICATE, 0),
    ("duplicate of one in progress", at(Phase.RECEIVED), kick.Known(at(Phase.SENDING, 1)), 1.0,
     Phase.RECEIVED, kick.Answer, AckStatus.DUPLICATE, 0),
    ("its turn, in time", at(Phase.PENDING), kick.Due(), 1.0,
     Phase.CONNECTING, kick.Connect, None, 1),
    ("its turn, too late, never tried", at(Phase.PENDING), kick.Due(), DEADLINE,
     Phase.FINAL, kick.Finish, AckStatus.EXPIRED, 0),
    ("its turn, too late, after tries", at(Phase.PENDING, 2), kick.Due(), DEADLINE + 1,
     Phase.FINAL, kick.Finish, AckStatus.FAILED, 2),
    ("no address yet, retry", at(Phase.CONNECTING, 1), kick.NoAddress("?", 5.0), 1.0,
     Phase.PENDING, kick.RetryAt, None, 0),
    ("no address until the end", at(Phase.CONNECTING, 1), kick.NoAddress("?", None), 1.0,
     Phase.FINAL, kick.Finish, AckStatus.EXPIRED, 0),
    ("refused, retry", at(Phase.CONNECTING, 1), kick.NotConnected("refused", 2.0), 1.0,
     Phase.PENDING, kick.RetryAt, None, 1),
    ("refused, retry would be late", at(Phase.CONNECTING, 1),
     kick.NotConnected("refused", DEADLINE), 1.0,
     Phase.FINAL, kick.Finish, AckStatus.FAILED, 1),
    ("connected in time", at(Phase.CONNECTING, 1), kick.Connected(), 1.0,
     Phase.SENDING, kick.Write, None, 1),
    ("connected too late", at(Phase.CONNECTING, 1), kick.Connected(), DEADLINE,
     Phase.FINAL, kick.Finish, AckStatus.FAILED, 1),
    ("offline: would only buffer", at(Phase.CONNECTING, 1), kick.Offline("cover open"), 1.0,
     Phase.FINAL, kick.Finish, AckStatus.FAILED, 1),
    ("ledger cannot record sending", at(Phase.CONNECTING, 1), kick.NotRecorded("disk"), 1.0,
     Phase.FINAL, kick.Finish, AckStatus.FAILED, 0),
    ("delivered", at(Phase.SENDING, 1), kick.Delivered(), 1.0,
     Phase.FINAL, kick.Finish, AckStatus.OPENED, 1),
    ("reset unread, retry", at(Phase.SENDING, 1), kick.NotRead("reset", 2.0), 1.0,
     Phase.PENDING, kick.RetryAt, None, 1),
    ("write stalled", at(Phase.SENDING, 1), kick.Uncertain("timed out"), 1.0,
     Phase.FINAL, kick.Finish, AckStatus.FAILED, 1),
    ("restart while sending", at(Phase.SENDING, 1), kick.Restarted(printer_known=True), 1.0,
     Phase.FINAL, kick.Finish, AckStatus.FAILED, 1),
    ("restart, pending, in time", at(Phase.PENDING), kick.Restarted(printer_known=True), 1.0,
     Phase.PENDING, kick.Queue, None, 0),
    ("restart, pending, late", at(Phase.PENDING), kick.Restarted(printer_known=True), DEADLINE,
     Phase.FINAL, kick.Finish, AckStatus.EXPIRED, 0),
    ("restart, printer gone", at(Phase.PENDING), kick.Restarted(printer_known=False), 1.0,
     Phase.FINAL, kick.Finish, AckStatus.FAILED, 0),
]  # fmt: skip


@pytest.mark.parametrize(
    ("track", "event", "now", "phase", "action", "status", "attempts"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_each_rule(track, event, now, phase, action, status, attempts):
    step = kick.next_step(track, event, now)
    assert step.track.phase is phase
    assert type(step.action) is action
    assert getattr(step.action, "status", None) == status
    assert step.track.attempts == attempts


def test_every_rule_of_the_table_is_exercised():
    covered = {(c[1].phase, type(c[2])) for c in CASES}
    assert covered == set(kick.TRANSITIONS)


@pytest.mark.parametrize("phase", list(Phase))
def test_an_input_the_phase_cannot_take_is_an_error_not_ignored(phase):
    allowed = {i for (p, i) in kick.TRANSITIONS if p is phase}
    for event in (kick.Delivered(), kick.Due(), kick.Claimed(), kick.Connected()):
        if type(event) not in allowed:
            with pytest.raises(kick.KickError):
                kick.next_step(Track(phase, DEADLINE), event, 1.0)


def test_final_events_take_no_input_at_all():
    final = Track(Phase.FINAL, DEADLINE, 1, AckStatus.OPENED)
    for event in (kick.Due(), kick.Delivered(), kick.Restarted(printer_known=True)):
        with pytest.raises(kick.KickError):
            kick.next_step(final, event, 1.0)


def test_stored_phases_round_trip():
    for phase in (Phase.PENDING, Phase.SENDING):
        assert kick.stored(kick.STORED[phase], None, DEADLINE, 0).phase is phase
    final = kick.stored("final", "opened", DEADLINE, 1)
    assert (final.phase, final.status) == (Phase.FINAL, AckStatus.OPENED)


# ---------------------------------------------------------------- property

REASON = st.sampled_from(["refused", "reset", "timed out"])
RETRY = st.one_of(st.none(), st.floats(0, 2 * DEADLINE, allow_nan=False))
INPUTS = st.one_of(
    st.builds(kick.Claimed),
    st.builds(kick.Due),
    st.builds(kick.Connected),
    st.builds(kick.Delivered),
    st.builds(kick.NoAddress, REASON, RETRY),
    st.builds(kick.NotConnected, REASON, RETRY),
    st.builds(kick.NotRead, REASON, RETRY),
    st.builds(kick.Uncertain, REASON),
    st.builds(kick.Offline, REASON),
    st.builds(kick.NotRecorded, REASON),
    st.builds(kick.Restarted, st.booleans()),
)
TIMES = st.floats(0, 2 * DEADLINE, allow_nan=False)


def walk(inputs, times):
    """Feed inputs in time order, skipping those the current phase cannot take."""
    track, writes, trail = kick.received(DEADLINE), [], []
    for event, now in zip(inputs, sorted(times), strict=False):
        try:
            step = kick.next_step(track, event, now)
        except kick.KickError:
            continue
        trail.append((track.phase, type(event).__name__, step.track.phase, now))
        if isinstance(step.action, kick.Write):
            writes.append((now, track.phase))
        track = step.track
    return track, writes, trail


@settings(max_examples=1000, deadline=None)
@given(st.lists(INPUTS, max_size=40), st.lists(TIMES, min_size=40, max_size=40))
def test_no_write_after_the_deadline_and_none_after_one_that_may_have_been_read(inputs, times):
    track, writes, trail = walk(inputs, times)
    # Never late: every write starts strictly before occurred_at + max_age_s.
    assert all(now < DEADLINE for now, _ in writes), trail
    # Never twice: SENDING is entered again only after NotRead, the printer's proof it did
    # not read the kick; after Delivered, Uncertain or a restart in SENDING, no more writes.
    entries = [i for i, (_, _, to, _) in enumerate(trail) if to is Phase.SENDING]
    for first, second in zip(entries, entries[1:], strict=False):
        left = next(t for t in trail[first + 1 : second + 1] if t[0] is Phase.SENDING)
        assert left[1] == "NotRead", trail
    if track.phase is Phase.FINAL:
        assert track.status is not None


def test_the_property_check_catches_a_table_that_writes_late(monkeypatch):
    # Negative control: a rule that ignores the deadline makes the property fail.
    def careless(track, event, now):
        return kick.Step(replace(track, phase=Phase.SENDING), kick.Write())

    monkeypatch.setitem(kick.TRANSITIONS, (Phase.CONNECTING, kick.Connected), careless)
    inputs = [kick.Claimed(), kick.Due(), kick.Connected()]
    _, writes, _ = walk(inputs, [1.0, 50.0, DEADLINE + 5])
    assert any(now >= DEADLINE for now, _ in writes)


def test_the_property_check_catches_a_table_that_resends(monkeypatch):
    # Negative control: an uncertain write sent back to PENDING would allow a second write.
    def resend(track, event, now):
        return kick.Step(replace(track, phase=Phase.PENDING), kick.RetryAt(now))

    monkeypatch.setitem(kick.TRANSITIONS, (Phase.SENDING, kick.Uncertain), resend)
    inputs = [kick.Claimed(), kick.Due(), kick.Connected(), kick.Uncertain("x"), kick.Due()]
    inputs += [kick.Connected()]
    _, writes, trail = walk(inputs, [1, 2, 3, 4, 5, 6])
    assert len(writes) == 2
    assert [t[1] for t in trail if t[0] is Phase.SENDING] == ["Uncertain"]
