"""authserver.limits: charges taken before evaluation, given back on success, refused in full,
never only global; the same in every process."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from authserver import limits
from authserver.limits import Limit, Lockout, Throttled, charge, network_of


@pytest.fixture
def store(app):
    return app.extensions["authserver"].store


def fresh(attempts: int, window: int = 60, scope: str = "test") -> Limit:
    return Limit(f"t{uuid.uuid4().hex[:8]}", attempts, window, scope)


def test_a_full_limit_refuses_and_says_which_and_when(store, clock):
    per_ip, per_all = fresh(2, 60, "address"), fresh(100, 600, "everyone")
    charge(store, [(per_ip, "a"), (per_all, "*")])
    clock.advance(10)
    charge(store, [(per_ip, "a"), (per_all, "*")])
    with pytest.raises(Throttled) as info:
        charge(store, [(per_ip, "a"), (per_all, "*")])
    assert info.value.limit is per_ip and info.value.retry_after == 50


def test_a_refused_attempt_costs_the_other_limits_nothing(store):
    per_ip, per_all = fresh(1), fresh(3)
    charge(store, [(per_ip, "a"), (per_all, "*")])
    for _ in range(5):
        with pytest.raises(Throttled):
            charge(store, [(per_ip, "a"), (per_all, "*")])
    # The shared budget was charged once, by the one attempt that was evaluated.
    charge(store, [(per_ip, "b"), (per_all, "*")])
    charge(store, [(per_ip, "c"), (per_all, "*")])
    with pytest.raises(Throttled) as info:
        charge(store, [(per_ip, "d"), (per_all, "*")])
    assert info.value.limit is per_all


def test_success_gives_the_charges_back(store):
    per_ip = fresh(2)
    for _ in range(10):
        charge(store, [(per_ip, "a")]).succeeded()
    charge(store, [(per_ip, "a")])
    charge(store, [(per_ip, "a")])
    with pytest.raises(Throttled):
        charge(store, [(per_ip, "a")])


def test_concurrent_attempts_cannot_exceed_a_limit(store):
    per_all = fresh(5)

    def attempt(_):
        try:
            charge(store, [(per_all, "*")])
            return True
        except Throttled:
            return False

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(attempt, range(40)))
    assert results.count(True) == 5


def test_a_lockout_refuses_the_right_answer_too_until_its_window_ends(store, clock):
    lock = Lockout(fresh(3, 60))
    t = clock()
    lock.check(store, "c|1.2.3.4", t)
    for _ in range(3):
        lock.failed(store, "c|1.2.3.4", t)
    with pytest.raises(Throttled) as info:
        lock.check(store, "c|1.2.3.4", t + 20)
    assert info.value.retry_after == 40
    lock.check(store, "c|5.6.7.8", t + 20)  # another identity is not affected
    clock.advance(61)
    lock.check(store, "c|1.2.3.4", clock())


@pytest.mark.parametrize(
    "address,network",
    [
        ("198.51.100.7", "198.51.100.0/24"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("::ffff:198.51.100.7", "198.51.100.0/24"),
        ("-", "-"),
        ("not an address", "not an address"),
    ],
)
def test_networks(address, network):
    assert network_of(address) == network


def test_every_kind_of_attempt_is_limited_per_address_or_account_not_only_globally(settings):
    kinds = [
        limits.anonymous_code_entry(settings, "198.51.100.7"),
        limits.account_code_entry(settings, "ten_1", "usr_1"),
        limits.sign_in(settings, "device", "ten_1", "alice", "198.51.100.7"),
        limits.device_authorization(settings, "cli_1", "198.51.100.7"),
    ]
    for charges in kinds:
        scopes = {limit.scope for limit, _ in charges}
        assert scopes & {"address", "account"}, scopes
        assert len(charges) >= 2
