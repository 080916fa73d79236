"""The trip to a provider and back that the mailboxes' consent and single sign-on share (portal/provider_trips.py):
the browser's few states, and a trip taken once, by this browser only, while it is fresh."""
import datetime
import secrets
import threading

import pytest

from portal.db import database
from portal.models import utcnow
from portal.models.sso import SsoFlow
from portal.provider_trips import STATES_KEPT, FlowRefused, remember_state, take


def test_a_browser_keeps_its_last_few_states_the_newest_last():
    states = []
    for number in range(STATES_KEPT + 2):
        states = remember_state(states, f"s{number}")
    assert states == [f"s{number}" for number in range(2, STATES_KEPT + 2)]
    assert remember_state(states, "s3")[-1] == "s3" and len(remember_state(states, "s3")) == STATES_KEPT


def trip(**values):
    flow = SsoFlow(state=secrets.token_urlsafe(32), nonce="n", redirect_uri="http://localhost/sso/callback", **values)
    flow.save()
    return flow


@pytest.mark.parametrize("age, reason", [(datetime.timedelta(minutes=9), None),
                                         (datetime.timedelta(minutes=11), "expired")])
def test_a_trip_is_taken_while_fresh(app, age, reason):
    now = utcnow()
    flow = trip(created_at=now - age)
    if reason is None:
        assert take(SsoFlow, flow.state, [flow.state], now).used_at == now
    else:
        with pytest.raises(FlowRefused) as refused:
            take(SsoFlow, flow.state, [flow.state], now)
        assert refused.value.reason == reason and SsoFlow.get_by_id(flow.id).used_at is None


def test_only_a_state_this_browser_was_given_and_only_once(app):
    flow = trip()
    for states in ([], ["other"], None):
        with pytest.raises(FlowRefused) as refused:
            take(SsoFlow, flow.state, states, utcnow())
        assert refused.value.reason == "foreign"
    take(SsoFlow, flow.state, [flow.state], utcnow())
    with pytest.raises(FlowRefused) as refused:
        take(SsoFlow, flow.state, [flow.state], utcnow())
    assert refused.value.reason == "replayed"


def test_two_callbacks_racing_with_one_state_take_it_once(app):
    """Both read the trip unused; the one-row update lets one of them through."""
    flow = trip()
    start = threading.Barrier(2)
    outcomes = []

    def callback():
        with database.connection_context():
            start.wait()
            try:
                take(SsoFlow, flow.state, [flow.state], utcnow())
                outcomes.append("taken")
            except FlowRefused as refused:
                outcomes.append(refused.reason)

    threads = [threading.Thread(target=callback) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == ["replayed", "taken"]
