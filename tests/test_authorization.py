"""authserver.authorization: who may manage the registry and who may approve which device code."""

from __future__ import annotations

import pytest

from authserver.authorization import (
    NotAllowed,
    check_approval,
    enrolment_locations,
    manages_registry,
    may_enrol_somewhere,
)
from authserver.models import Client, User
from authserver.problems import WrongTenant


def person(roles=(), active=True, tenant="ten_a") -> User:
    return User(
        id="usr_1", tenant_id=tenant, login="u", password_hash="x", roles=list(roles), active=active
    )


def client(subject="device") -> Client:
    return Client(client_id="cli_1", tenant_id="ten_a", name="c", auth_method="none",
                  grant_types=[], device_subject=subject)  # fmt: skip


@pytest.mark.parametrize(
    "roles,manages",
    [
        (("TENANT.ADMIN",), True),
        (("DEVICE.MANAGER",), True),
        (("DEVICE.MANAGER@loc_1",), False),
        (("CASHIER",), False),
        ((), False),
        (("tenant.admin",), False),
    ],
)
def test_managing_the_registry_needs_a_tenant_wide_device_role(roles, manages):
    assert manages_registry(person(roles)) is manages
    assert manages_registry(person(roles, active=False)) is False


def test_where_a_user_may_enrol():
    assert enrolment_locations(person(("TENANT.ADMIN",))) is None
    assert enrolment_locations(
        person(("DEVICE.MANAGER@loc_1", "TENANT.ADMIN@loc_2", "CASHIER@loc_3"))
    ) == {
        "loc_1",
        "loc_2",
    }
    assert enrolment_locations(person(("CASHIER",))) == frozenset()
    assert enrolment_locations(person(("DEVICE.MANAGER@loc_1",), active=False)) == frozenset()
    assert may_enrol_somewhere(person(("DEVICE.MANAGER@loc_1",)))
    assert may_enrol_somewhere(person(("DEVICE.MANAGER",)))
    assert not may_enrol_somewhere(person(("CASHIER@loc_1",)))


@pytest.mark.parametrize(
    "roles,location,allowed",
    [
        (("TENANT.ADMIN",), None, True),
        (("TENANT.ADMIN",), "loc_9", True),
        (("DEVICE.MANAGER@loc_1",), "loc_1", True),
        (("DEVICE.MANAGER@loc_1",), "loc_2", False),
        (("DEVICE.MANAGER@loc_1",), None, False),
        (("CASHIER",), None, False),
        ((), "loc_1", False),
    ],
)
def test_approving_a_kiosk_enrolment(roles, location, allowed):
    if allowed:
        check_approval(person(roles), client(), "ten_a", location)
    else:
        with pytest.raises(NotAllowed):
            check_approval(person(roles), client(), "ten_a", location)


def test_anyone_active_of_the_tenant_may_approve_their_own_sign_in():
    check_approval(person(()), client("user"), "ten_a", None)
    with pytest.raises(WrongTenant, match="another organisation"):
        check_approval(person(("TENANT.ADMIN",), tenant="ten_b"), client("user"), "ten_a", None)
    with pytest.raises(WrongTenant):
        check_approval(person(("TENANT.ADMIN",), active=False), client("user"), "ten_a", None)
