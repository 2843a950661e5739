"""Pure rules of the REST layer: money, order transitions, rate limits, video tokens."""

from __future__ import annotations

from decimal import Decimal

import pytest
from agora_token_builder.AccessToken import AccessToken
from pydantic import BaseModel, ValidationError

from core import money, order_rules as rules
from core.money import CurrencyIn, MoneyError, MoneyIn, format_minor, parse_amount, to_minor
from gateway.security.ratelimit import TokenBucket
from gateway.services import video_tokens


class TestMoney:
    @pytest.mark.parametrize(
        "raw, minor",
        [
            ("19.99", 1999),
            ("0.10", 10),
            ("5", 500),
            (5, 500),
            ("0", 0),
            ("1234567.8", 123456780),
            (0, 0),
            (5.0, 500),
            (1e3, 100000),
            ("9999999999.99", 999999999999),
            # JSON numbers (issue 15): read by their decimal text, as REST parses them (Decimal) ...
            (Decimal("49.99"), 4999),
            (Decimal("4.999E1"), 4999),
            (Decimal("49.990"), 4999),
            (Decimal("-0.0"), 0),
            (Decimal("9999999999.99"), 999999999999),
            # ... or as a float's shortest text (what a JSON writer sent for it)
            (19.99, 1999),
            (5.5, 550),
            (0.1, 10),
        ],
    )
    def test_amounts_become_exact_minor_units(self, raw: object, minor: int) -> None:
        assert to_minor(parse_amount(raw), "USD") == minor

    @pytest.mark.parametrize(
        "raw",
        [
            True,
            None,
            "-1",
            "+1",
            "1e3",
            "1,5",
            " ",
            "",
            "01",
            "1.2345",
            "NaN",
            "Infinity",
            [],
            {},
            10**10,
            1e10,
            "99999999999",
            " 5",
            "5 ",
            "5\n",
            float("inf"),
            float("nan"),
            Decimal("1.2345"),
            Decimal("5.0000000000000000000000000000001"),  # beyond a Decimal's 28 digits: never rounded away
            Decimal("-1"),
            Decimal("NaN"),
            Decimal("Infinity"),
            Decimal("1E+10"),
            Decimal("1E+999999999"),
        ],
    )
    def test_floats_and_junk_are_refused(self, raw: object) -> None:
        with pytest.raises(MoneyError):
            parse_amount(raw)

    def test_currency_decimals(self) -> None:
        with pytest.raises(MoneyError):
            to_minor(Decimal("19.999"), "USD")
        with pytest.raises(MoneyError):
            to_minor(Decimal("1.5"), "JPY")
        assert to_minor(Decimal("1.234"), "KWD") == 1234
        assert (
            format_minor(1999, "USD"),
            format_minor(5, "USD"),
            format_minor(1200, "JPY"),
            format_minor(1234, "KWD"),
            format_minor(-150, "EUR"),
        ) == ("19.99", "0.05", "1200", "1.234", "-1.50")

    def test_sums_in_minor_units_are_exact(self) -> None:
        total = sum(to_minor(parse_amount("0.10"), "USD") for _ in range(10))
        assert format_minor(total, "USD") == "1.00"  # 0.1 * 10 as floats is 0.9999999999999999

    def test_model_field(self) -> None:
        class Body(BaseModel):
            price: MoneyIn

        assert Body.model_validate({"price": "2.50"}).price == Decimal("2.50")
        assert Body.model_validate({"price": 2.0}).price == Decimal(2)
        assert Body.model_validate({"price": Decimal("2.5")}).price == Decimal("2.5")
        assert Body.model_validate_json('{"price": 2.5}').price == Decimal("2.5")
        with pytest.raises(ValidationError, match="at most 2 decimals"):
            Body.model_validate({"price": "2.505"})
        with pytest.raises(ValidationError, match="at most 2 decimals"):
            Body.model_validate({"price": Decimal("2.505")})
        number, string = Body.model_json_schema()["properties"]["price"]["anyOf"]
        assert string == {
            "type": "string",
            "pattern": r"^(0|[1-9][0-9]{0,9})(\.[0-9]{1,2})?$",
            "description": "exact decimal, at most 2 decimals (USD)",
        }
        assert (number["type"], number["minimum"], number["maximum"], number["multipleOf"]) == (
            "number",
            0,
            9999999999.99,
            0.01,
        )

    def test_the_schema_follows_the_shop_currency(self) -> None:
        class Body(BaseModel):
            price: MoneyIn
            currency: CurrencyIn

        try:
            money.use_currency("JPY")
            schema = Body.model_json_schema()
            assert schema["properties"]["price"]["anyOf"][1]["pattern"] == "^(0|[1-9][0-9]{0,9})$"
            assert schema["properties"]["price"]["anyOf"][0]["multipleOf"] == 1
            assert schema["properties"]["currency"]["enum"] == ["JPY"]
            assert Body.model_validate({"price": "1200", "currency": "JPY"}).price == Decimal(1200)
            with pytest.raises(ValidationError):
                Body.model_validate({"price": "12.5", "currency": "JPY"})
            with pytest.raises(ValidationError, match="JPY amounts have at most 0 decimals"):
                Body.model_validate({"price": Decimal("12.5"), "currency": "JPY"})
            with pytest.raises(ValidationError, match="sells in JPY"):
                Body.model_validate({"price": "1200", "currency": "USD"})
            money.use_currency("KWD")
            assert Body.model_validate({"price": "1.234", "currency": "KWD"}).price == Decimal("1.234")
        finally:
            money.use_currency(money.DEFAULT_CURRENCY)

    # Each refusal says what to send instead (the REST error shows it as is).
    @pytest.mark.parametrize(
        "raw, message",
        [
            (True, 'send money as a number such as 19.99 or a decimal string such as "19.99"'),
            (Decimal("-1"), "amount out of range: 0 to 9999999999.999"),
            (10**10, "amount out of range: 0 to 9999999999.999"),
            (Decimal("1.2345"), "an amount has at most 3 decimals"),
            ("-1", 'send money as a number such as 19.99 or a decimal string such as "19.99" (no sign)'),
            (None, 'send money as a number such as 19.99 or a decimal string such as "19.99" (no sign)'),
        ],
    )
    def test_a_refusal_says_what_to_send(self, raw: object, message: str) -> None:
        with pytest.raises(MoneyError) as e:
            parse_amount(raw)
        assert str(e.value) == message

    @pytest.mark.parametrize(
        "amount, digits",
        [
            ("0", (0, 0)),
            ("0.000", (0, 0)),
            ("5", (1, 0)),
            ("10", (1, 0)),
            ("1E+3", (1, 0)),
            ("12.30", (3, 1)),
            ("1.20", (2, 1)),
            ("1.2340", (4, 3)),
            ("0.050", (1, 2)),
        ],
    )
    def test_significant_digits_and_decimals_leave_out_trailing_zeros(
        self, amount: str, digits: tuple[int, int]
    ) -> None:
        assert money._digits(Decimal(amount)) == digits

    def test_trailing_zeros_are_not_decimals(self) -> None:
        assert parse_amount(Decimal("1.2340")) == Decimal("1.234")
        assert to_minor(parse_amount(Decimal("1.2340")), "KWD") == 1234
        with pytest.raises(MoneyError, match=r"^an amount has at most 3 decimals$"):
            parse_amount(Decimal("1.23450"))

    def test_a_number_of_up_to_15_digits_is_shown_as_is(self) -> None:
        assert money.decimal_number(Decimal("123456789012345")) == 123456789012345.0
        assert money.decimal_number(Decimal("1234567890123.45")) == 1234567890123.45
        with pytest.raises(MoneyError) as e:
            money.decimal_number(Decimal("1234567890123456"))
        assert str(e.value) == "1234567890123456 has more than 15 digits: no JSON number writes it exactly"

    def test_a_negative_zero_is_read_as_zero(self) -> None:
        for raw in (Decimal("-0.0"), -0.0):
            amount = parse_amount(raw)
            assert (str(amount), amount.is_signed()) == ("0.0", False)

    def test_the_schema_of_an_amount_is_exactly_what_is_accepted(self) -> None:
        def schema(maximum: float, step: float, pattern: str, decimals: int, currency: str, example: float) -> object:
            return {
                "anyOf": [
                    {
                        "type": "number",
                        "minimum": 0,
                        "maximum": maximum,
                        "multipleOf": step,
                        "description": f"read by its decimal text, at most {decimals} decimals ({currency})",
                    },
                    {
                        "type": "string",
                        "pattern": pattern,
                        "description": f"exact decimal, at most {decimals} decimals ({currency})",
                    },
                ],
                "description": f"an amount in {currency}: a JSON number (its decimal text is the amount) "
                "or an exact decimal string",
                "examples": [example],
            }

        cents, whole = r"^(0|[1-9][0-9]{0,9})(\.[0-9]{1,2})?$", "^(0|[1-9][0-9]{0,9})$"
        assert money.money_schema("USD") == schema(9999999999.99, 0.01, cents, 2, "USD", 49.99)
        assert money.money_schema("JPY") == schema(9999999999.0, 1.0, whole, 0, "JPY", 1999)
        mills = r"^(0|[1-9][0-9]{0,9})(\.[0-9]{1,3})?$"
        assert money.money_schema("KWD") == schema(9999999999.999, 0.001, mills, 3, "KWD", 49.99)

    def test_the_currency_field_accepts_and_shows_only_the_shop_currency(self) -> None:
        class Body(BaseModel):
            currency: CurrencyIn

        assert Body.model_json_schema()["properties"]["currency"] == {
            "type": "string",
            "enum": ["USD"],
            "description": "the shop currency",
            "title": "Currency",  # pydantic adds the field's title
        }
        assert Body.model_validate({"currency": "USD"}).currency == "USD"
        with pytest.raises(ValidationError, match="this shop sells in USD"):
            Body.model_validate({"currency": "usd"})


class TestOrderTransitions:
    def test_admin_moves_along_the_arrows(self) -> None:
        for current, nexts in rules.TRANSITIONS.items():
            for wanted in rules.STATUSES:
                if wanted in nexts:
                    rules.check_transition(current, wanted, is_admin=True, payment_status="unpaid")
                else:
                    with pytest.raises(rules.TransitionRefused) as e:
                        rules.check_transition(current, wanted, is_admin=True, payment_status="unpaid")
                    assert e.value.status == 409

    def test_customers_only_cancel_pending_orders(self) -> None:
        rules.check_transition("pending", "cancelled", is_admin=False, payment_status="unpaid")
        with pytest.raises(rules.TransitionRefused) as e:
            rules.check_transition("pending", "confirmed", is_admin=False, payment_status="unpaid")
        assert e.value.status == 403
        with pytest.raises(rules.TransitionRefused) as e:
            rules.check_transition("confirmed", "cancelled", is_admin=False, payment_status="unpaid")
        assert e.value.status == 409

    def test_paid_orders_are_not_cancelled(self) -> None:
        with pytest.raises(rules.TransitionRefused, match="paid"):
            rules.check_transition("confirmed", "cancelled", is_admin=True, payment_status="paid")

    def test_unknown_status(self) -> None:
        with pytest.raises(rules.TransitionRefused) as e:
            rules.check_transition("pending", "lost", is_admin=True, payment_status="unpaid")
        assert e.value.status == 422

    @pytest.mark.parametrize(
        "current, wanted, is_admin, paid, status, message",
        [
            (
                "pending",
                "lost",
                True,
                "unpaid",
                422,
                "unknown status 'lost': one of pending, confirmed, shipped, delivered, cancelled",
            ),
            ("pending", "shipped", False, "unpaid", 403, "customers can only cancel their orders"),
            (
                "shipped",
                "cancelled",
                False,
                "unpaid",
                409,
                "this order is shipped: only pending orders can be cancelled by the customer",
            ),
            (
                "pending",
                "delivered",
                True,
                "unpaid",
                409,
                "an order that is pending cannot become delivered; allowed: cancelled, confirmed",
            ),
            (
                "delivered",
                "shipped",
                True,
                "unpaid",
                409,
                "an order that is delivered cannot become shipped; allowed: none (final)",
            ),
            (
                "lost",
                "shipped",
                True,
                "unpaid",
                409,
                "an order that is lost cannot become shipped; allowed: none (final)",
            ),
            (
                "pending",
                "cancelled",
                True,
                "paid",
                409,
                "this order is paid and cannot be cancelled here (no refunds in the offline provider)",
            ),
        ],
    )
    def test_a_refusal_says_what_is_allowed(
        self, current: str, wanted: str, is_admin: bool, paid: str, status: int, message: str
    ) -> None:
        with pytest.raises(rules.TransitionRefused) as e:
            rules.check_transition(current, wanted, is_admin=is_admin, payment_status=paid)
        assert (e.value.status, str(e.value)) == (status, message)


class TestTokenBucket:
    def test_burst_then_refill(self) -> None:
        bucket = TokenBucket(rate_per_minute=3)
        assert [bucket.take("k", now=0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
        wait = bucket.take("k", now=0.0)
        assert wait == pytest.approx(20.0)
        assert bucket.take("other", now=0.0) == 0.0  # keys are independent
        assert bucket.take("k", now=20.0) == 0.0
        assert bucket.take("k", now=20.0) > 0

    def test_off_and_bounded(self) -> None:
        assert all(TokenBucket(0).take("k") == 0.0 for _ in range(100))
        bucket = TokenBucket(rate_per_minute=60, max_keys=10)
        for i in range(50):
            bucket.take(f"k{i}", now=float(i) * 10)
        assert len(bucket._buckets) <= 11


class TestVideoTokens:
    APP, CERT = "970ca35de60c44645bbae8a215061b33", "5cfd2fd1755d40ecb72977518be15d3b"

    def test_roles_and_expiry_parse_back(self) -> None:
        for role, privileges in ((video_tokens.PUBLISHER, {1, 2, 3, 4}), (video_tokens.AUDIENCE, {1})):
            t = video_tokens.build(self.APP, self.CERT, "6b06a3070bbe635db7907975", 77, role, 2_000_000_000)
            parsed = AccessToken()
            assert parsed.fromString(t.token)
            assert set(parsed.messages) == privileges and set(parsed.messages.values()) == {2_000_000_000}
            assert t.channel == "6b06a3070bbe635db7907975" and self.CERT not in t.token

    def test_uids(self) -> None:
        assert video_tokens.uid_for("user-1") == video_tokens.uid_for("user-1")
        assert all(1 <= video_tokens.uid_for(x) <= video_tokens.MAX_UID for x in ("a", "b", None, ""))
