"""Gateway leases: which gateways have been silent too long. Pure: times are
passed in (binary-exact values, so the edge of a lease is exact)."""

from __future__ import annotations

from actors.gateway_leases import GatewayLeases


def test_a_gateway_is_held_exactly_at_the_edge_of_its_lease_and_expires_just_after() -> None:
    leases = GatewayLeases(lease=6.0)
    leases.renew("gw1", 10.0)
    assert leases.expire(16.0) == []  # silent exactly 6 s: still held
    assert leases.holders() == ["gw1"]
    assert leases.expire(16.0625) == ["gw1"]
    assert leases.holders() == []


def test_an_expired_gateway_is_reported_once() -> None:
    leases = GatewayLeases(lease=1.0)
    leases.renew("gw1", 0.0)
    assert leases.expire(2.0) == ["gw1"]
    assert leases.expire(3.0) == []


def test_renewing_moves_the_lease_forward() -> None:
    leases = GatewayLeases(lease=6.0)
    leases.renew("gw1", 10.0)
    leases.renew("gw1", 15.0)
    assert leases.expire(20.5) == []
    assert leases.expire(21.0) == []
    assert leases.expire(21.0625) == ["gw1"]


def test_only_the_silent_gateways_expire_in_the_order_first_heard() -> None:
    leases = GatewayLeases(lease=2.0)
    leases.renew("gw-b", 0.0)
    leases.renew("gw-a", 0.0)
    leases.renew("gw-c", 0.0)
    leases.renew("gw-c", 3.0)
    assert leases.expire(4.0) == ["gw-b", "gw-a"]
    assert leases.holders() == ["gw-c"]


def test_a_grant_does_not_shorten_a_lease_already_held() -> None:
    leases = GatewayLeases(lease=2.0)
    leases.renew("gw1", 5.0)
    leases.grant("gw1", 1.0)  # at load: known from the checkpoint, but already heard from
    leases.grant("gw2", 1.0)
    assert leases.expire(6.0) == ["gw2"]
    assert leases.expire(7.0) == []
    assert leases.expire(7.0625) == ["gw1"]


def test_a_gateway_heard_from_after_expiring_starts_a_new_lease() -> None:
    leases = GatewayLeases(lease=1.0)
    leases.renew("gw1", 0.0)
    assert leases.expire(1.5) == ["gw1"]
    leases.renew("gw1", 2.0)
    assert leases.holders() == ["gw1"]
    assert leases.expire(3.0) == []


class TestNextExpiry:
    def test_no_lease_held_means_no_expiry_to_wait_for(self) -> None:
        assert GatewayLeases(6.0).next_expiry() is None

    def test_the_first_lease_to_run_out_sets_it(self) -> None:
        leases = GatewayLeases(6.0)
        leases.renew("gw-b", 10.0)
        leases.renew("gw-a", 4.0)
        assert leases.next_expiry() == 10.0
        leases.renew("gw-a", 12.0)  # heard from again: its lease starts over
        assert leases.next_expiry() == 16.0

    def test_after_it_the_gateway_expires_and_the_next_lease_counts(self) -> None:
        leases = GatewayLeases(6.0)
        leases.renew("gw-a", 0.0)
        leases.renew("gw-b", 2.0)
        expiry = leases.next_expiry()
        assert expiry == 6.0 and leases.expire(expiry) == []  # exactly at its end: still held
        assert leases.expire(6.0625) == ["gw-a"]
        assert leases.next_expiry() == 8.0
        assert leases.expire(8.0625) == ["gw-b"] and leases.next_expiry() is None
