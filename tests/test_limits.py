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


# -- each rule on its own (mutation testing) --------------------------------------------------------


def test_a_refusal_names_the_limit_that_refused(store):
    per_net = fresh(1, 60, "network")
    charge(store, [(per_net, "198.51.100.0/24")])
    with pytest.raises(Throttled) as info:
        charge(store, [(per_net, "198.51.100.0/24")])
    assert str(info.value) == "too many failed attempts (network)"


def test_identities_that_are_not_valid_unicode_are_limited_not_an_error(store):
    """A lone surrogate (what a broken client may send as a login) still gets its own key."""
    per_login = fresh(1)
    charge(store, [(per_login, "\ud800")])
    with pytest.raises(Throttled):
        charge(store, [(per_login, "\ud800")])
    charge(store, [(per_login, "\udc00")])  # another identity, another key


def test_a_lockout_ends_at_its_deadline_and_counts_at_least_a_second(store):
    lock = Lockout(fresh(1, 60))
    lock.refuse_while_locked(None, 1000.0)
    lock.refuse_while_locked("1000.0", 1000.0)  # the deadline itself: over
    with pytest.raises(Throttled) as info:
        lock.refuse_while_locked("1000.25", 1000.0)
    assert info.value.retry_after == 1  # never "retry after 0 s" while still locked
    with pytest.raises(Throttled) as info:
        lock.refuse_while_locked("1030.5", 1000.0)
    assert info.value.retry_after == 31


def test_failures_beyond_a_lockout_are_refused_as_they_come(store, clock):
    lock = Lockout(fresh(2, 60))
    t = clock()
    lock.failed(store, "c|1.2.3.4", t)
    lock.failed(store, "c|1.2.3.4", t)  # fills the window: locked from now on, not refused yet
    with pytest.raises(Throttled) as info:
        lock.failed(store, "c|1.2.3.4", t)
    assert info.value.retry_after == 60
    lock.failed(store, "c|5.6.7.8", t)  # another identity is not affected


def test_sign_in_has_its_own_per_address_limit_when_the_channel_gives_one(settings, store):
    charges = limits.sign_in(settings, "link", "ten_1", "alice", "198.51.100.7", per_ip=(2, 60))
    (per_ip,) = [limit for limit, ident in charges if ident == "198.51.100.7"]
    assert (per_ip.attempts, per_ip.window, per_ip.scope) == (2, 60, "address")
    default = limits.sign_in(settings, "device", "ten_1", "alice", "198.51.100.7")
    (per_ip,) = [limit for limit, ident in default if ident == "198.51.100.7"]
    assert (per_ip.attempts, per_ip.window) == (
        settings.sign_in_failures_per_ip,
        settings.sign_in_window,
    )


def test_guessing_one_account_backs_off_to_the_hourly_limit_from_any_address(
    settings, store, clock
):
    """The short account window resets every few minutes; the hourly tier does not: after
    ``sign_in_failures_per_account_hour`` failures the account is refused until the hour ends."""
    clock.t = 1_800_000_000.0
    start = clock()
    per_window = settings.sign_in_failures_per_account
    hourly = settings.sign_in_failures_per_account_hour
    n = 0
    while n < hourly:
        for _ in range(per_window):
            if n == hourly:
                break
            charge(store, limits.sign_in(settings, "t", "ten_1", "alice", f"10.{n}.0.1"))
            n += 1
        clock.advance(settings.sign_in_account_window + 1)
    with pytest.raises(Throttled) as info:
        charge(store, limits.sign_in(settings, "t", "ten_1", "alice", "10.250.0.1"))
    assert info.value.limit.window == 3600 and info.value.limit.attempts == hourly
    assert info.value.retry_after == 3600 - int(clock() - start)
    # Another account is not affected.
    charge(store, limits.sign_in(settings, "t", "ten_1", "bob", "10.251.0.1"))


def test_every_limit_names_what_it_counts(settings):
    """The scope is what a refusal names (``Throttled``): per kind, in the order charged."""
    scopes = {
        "anonymous": limits.anonymous_code_entry(settings, "198.51.100.7"),
        "account": limits.account_code_entry(settings, "ten_1", "usr_1"),
        "sign-in": limits.sign_in(settings, "device", "ten_1", "alice", "198.51.100.7"),
        "device-authorization": limits.device_authorization(settings, "cli_1", "198.51.100.7"),
    }
    assert {kind: [limit.scope for limit, _ in charges] for kind, charges in scopes.items()} == {
        "anonymous": ["address", "network", "anonymous"],
        "account": ["account", "tenant"],
        "sign-in": ["address", "network", "account", "account"],
        "device-authorization": ["address", "client"],
    }
    # Each limit counts in its own keys, even where two count the same identity.
    prefixes = [limit.prefix for charges in scopes.values() for limit, _ in charges]
    assert len(set(prefixes)) == len(prefixes)


def test_an_attempt_gives_its_charges_back_once(store):
    """``succeeded`` twice (a retried commit hook) must not give back another attempt's charge."""
    per_ip = fresh(2)
    first = charge(store, [(per_ip, "a")])
    charge(store, [(per_ip, "a")])  # a failure: its charge stays
    first.succeeded()
    first.succeeded()
    charge(store, [(per_ip, "a")])
    with pytest.raises(Throttled):
        charge(store, [(per_ip, "a")])
