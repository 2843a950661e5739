"""Who a chat message is from (`core/chat_names.py`): accounts chat under their own name,
guests may not pass for staff however they dress the name up."""

from __future__ import annotations

import pytest

from core.chat_names import NAME_RESERVED, NameReserved, chat_name, check_guest_name, is_reserved

SHOP = "Wren Shop"
CYRILLIC_A = "\u0430"
GREEK_O = "\u03bf"


@pytest.mark.parametrize(
    "name",
    [
        "admin",
        "Admin",
        "ADMIN",
        " admin ",
        "A d m i n",
        "a.d.m.i.n",
        "ADM1N",
        "4dmin",
        "adrnin",  # r + n reads as m
        "\u00e1dmin",  # an accent
        "\uff21\uff24\uff2d\uff29\uff2e",  # full-width letters
        CYRILLIC_A + "dmin",
        "m" + GREEK_O + "derator",
        "Moderator",
        "administrator",
        "Staff",
        "support_team",
        "Support Team",
        "the admin",
        "AdminBob",
        "wren shop",
        "WrenShop",
        "W R E N  S H 0 P",
        "WrenCOS",
    ],
)
def test_a_staff_name_is_reserved_however_written(name: str) -> None:
    assert is_reserved(name, SHOP)
    with pytest.raises(NameReserved) as e:
        check_guest_name(name, SHOP)
    assert e.value.code == NAME_RESERVED == "name_reserved"
    assert "kept for the shop's staff" in str(e.value)


@pytest.mark.parametrize("name", ["Bob", "ann", "Adam", "Modesto", "Ghost", "Liam", "Madmax", "Wren", "", "   "])
def test_ordinary_names_are_free(name: str) -> None:
    assert not is_reserved(name, SHOP)
    assert check_guest_name(name, SHOP) == name.strip()


def test_the_shop_name_is_reserved_only_when_configured() -> None:
    assert not is_reserved("Wren Shop")
    assert is_reserved("Wren Shop", SHOP)


def test_an_account_chats_under_its_own_name_whatever_it_asks_for() -> None:
    assert chat_name("Ann Lee", "somebody else") == "Ann Lee"
    assert chat_name("Ann Lee", None) == "Ann Lee"
    assert chat_name("Admin", "Bob", SHOP) == "Admin"  # staff accounts keep their names


def test_a_guest_chats_under_the_name_it_asks_for_unless_reserved() -> None:
    assert chat_name(None, " bob ") == "bob"
    assert chat_name(None, None) == ""
    with pytest.raises(NameReserved):
        chat_name(None, "Support", SHOP)


def test_a_reserved_name_in_the_middle_of_a_name_is_still_reserved() -> None:
    assert is_reserved("the admin team")
    assert is_reserved("my.support.desk")
    assert not is_reserved("theadminteam")  # run together, a staff name neither starts nor ends it


def test_vv_reads_as_w() -> None:
    assert is_reserved("vvrencos")
    assert is_reserved("VVRENCOS")


def test_no_shop_name_reserves_nothing_more() -> None:
    # Without a shop name only the staff names are kept, whatever the guest writes.
    assert not is_reserved("xxxx")
    assert check_guest_name("XXXX") == "XXXX"
    assert chat_name(None, "xxxx") == "xxxx"


def test_a_guest_may_not_chat_as_the_shop() -> None:
    with pytest.raises(NameReserved):
        chat_name(None, "Wren Shop", SHOP)
    assert chat_name(None, "Wren Shop") == "Wren Shop"


def test_the_refusal_quotes_the_first_50_characters_of_the_name() -> None:
    name = "admin" + "x" * 60
    with pytest.raises(NameReserved) as e:
        check_guest_name(name)
    assert str(e.value) == f"The name {name[:50]!r} is kept for the shop's staff: choose another"
    assert f"{name[:51]!r}" not in str(e.value)
