from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import uuid4

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from livermore_schema.db import create_engine
from livermore_schema.settings import DatabaseSettings
from livermore_schema.tables import (
    DEFAULT_USER_SETTINGS,
    AlertHistory,
    ApiToken,
    Exchange,
    ExchangeSymbol,
    Position,
    User,
    UserExchange,
)


@pytest.fixture
def session(private_db: DatabaseSettings) -> Iterator[Session]:
    """A session whose work is rolled back, on a database no other test module writes to."""
    engine = create_engine(private_db)
    conn = engine.connect()
    outer = conn.begin()
    db = Session(bind=conn, join_transaction_mode="create_savepoint")
    try:
        yield db
    finally:
        db.close()
        outer.rollback()
        conn.close()
        engine.dispose()


def _user(db: Session, username: str = "ada") -> User:
    user = User(username=username, email=f"{username}@example.com")
    db.add(user)
    db.commit()
    return user


def _alert(exchange_id: int, **overrides: object) -> AlertHistory:
    values: dict[str, object] = {
        "uid": uuid4(),
        "exchange_id": exchange_id,
        "symbol": "BTC-USD",
        "timeframe": "1h",
        "alert_type": "macdv",
        "trigger_label": "level_150",
        "trigger_value": Decimal("151.25"),
        "price": Decimal("64123.45"),
        "triggered_at": datetime(2024, 5, 1, 12, tzinfo=UTC),
        "details": {"bias": "bullish"},
    }
    values.update(overrides)
    return AlertHistory.model_validate(values)


def test_user_defaults_settings_role_and_utc_timestamps(session: Session) -> None:
    user = _user(session)
    session.refresh(user)
    assert user.settings == DEFAULT_USER_SETTINGS == {"version": 1, "watchlist": {}}
    assert user.role == "user" and user.is_active is True
    assert user.created_at.utcoffset() == timedelta(0)


def test_server_defaults_apply_to_plain_sql_inserts(session: Session) -> None:
    row = session.execute(
        sa.text(
            "INSERT INTO users (username, email) VALUES ('raw', 'raw@example.com') "
            "RETURNING settings, role, is_active, created_at"
        )
    ).one()
    assert row.settings == {"version": 1, "watchlist": {}}
    assert (row.role, row.is_active) == ("user", True)
    assert row.created_at.tzinfo is not None


def test_updated_at_moves_on_update(session: Session) -> None:
    user = _user(session)
    user.updated_at = datetime(2020, 1, 1, tzinfo=UTC)
    session.commit()
    user.email = "ada@example.org"
    session.commit()
    session.refresh(user)
    assert user.updated_at > datetime(2021, 1, 1, tzinfo=UTC)


def test_role_is_admin_or_user(session: Session) -> None:
    session.add(User(username="eve", email="eve@example.com", role="root"))
    with pytest.raises(IntegrityError, match="ck_users_role"):
        session.commit()


@pytest.mark.parametrize("field", ["username", "email"])
def test_username_and_email_are_unique(session: Session, field: str) -> None:
    _user(session, "ada")
    other = User(username="bob", email="bob@example.com")
    setattr(other, field, getattr(session.exec(select(User)).one(), field))
    session.add(other)
    with pytest.raises(IntegrityError, match=f"uq_users_{field}"):
        session.commit()


def test_duplicate_user_exchange_is_rejected(session: Session) -> None:
    user = _user(session)
    assert user.id is not None
    session.add(UserExchange(user_id=user.id, exchange_id=1, api_key_env_var="CB_KEY"))
    session.commit()
    session.add(UserExchange(user_id=user.id, exchange_id=1, api_key_env_var="CB_KEY_2"))
    with pytest.raises(IntegrityError, match="uq_user_exchanges_user_id_exchange_id"):
        session.commit()


def test_alert_history_exchange_must_exist(session: Session) -> None:
    session.add(_alert(exchange_id=999))
    with pytest.raises(IntegrityError, match="fk_alert_history_exchange_id_exchanges"):
        session.commit()


def test_alert_history_uid_is_unique(session: Session) -> None:
    uid = uuid4()
    session.add(_alert(exchange_id=1, uid=uid))
    session.commit()
    session.add(_alert(exchange_id=2, uid=uid))
    with pytest.raises(IntegrityError, match="uq_alert_history_uid"):
        session.commit()


def test_exchange_symbol_unique_per_exchange_only(session: Session) -> None:
    for exchange_id in (1, 2):
        session.add(
            ExchangeSymbol(
                exchange_id=exchange_id, symbol="BTC-USD", base_currency="BTC", quote_currency="USD"
            )
        )
    session.commit()
    session.add(
        ExchangeSymbol(exchange_id=1, symbol="BTC-USD", base_currency="BTC", quote_currency="USD")
    )
    with pytest.raises(IntegrityError, match="uq_exchange_symbols_exchange_id_symbol"):
        session.commit()


def test_position_unique_and_exchange_must_exist(session: Session) -> None:
    user = _user(session)
    assert user.id is not None
    session.add(Position(user_id=user.id, exchange_id=2, symbol="BTC", quantity=Decimal(1)))
    session.commit()
    session.add(Position(user_id=user.id, exchange_id=2, symbol="BTC", quantity=Decimal(2)))
    with pytest.raises(IntegrityError, match="uq_positions_user_id_exchange_id_symbol"):
        session.commit()
    session.rollback()
    session.add(Position(user_id=user.id, exchange_id=77, symbol="ETH", quantity=Decimal(1)))
    with pytest.raises(IntegrityError, match="fk_positions_exchange_id_exchanges"):
        session.commit()


def test_token_hash_is_unique(session: Session) -> None:
    user = _user(session)
    assert user.id is not None
    session.add(ApiToken(user_id=user.id, name="cli", token_hash="a" * 64))
    session.commit()
    session.add(ApiToken(user_id=user.id, name="web", token_hash="a" * 64))
    with pytest.raises(IntegrityError, match="uq_api_tokens_token_hash"):
        session.commit()


def test_deleting_a_user_cascades_to_accounts_tokens_and_positions(session: Session) -> None:
    user = _user(session)
    assert user.id is not None
    session.add(UserExchange(user_id=user.id, exchange_id=3))
    session.add(ApiToken(user_id=user.id, name="cli", token_hash="b" * 64))
    session.add(Position(user_id=user.id, exchange_id=3, symbol="SOL", quantity=Decimal(3)))
    session.commit()
    session.execute(sa.delete(User).where(sa.column("id") == user.id))
    session.commit()
    for model in (UserExchange, ApiToken, Position):
        assert session.exec(select(model)).all() == []


def test_numeric_columns_round_trip_decimals_exactly(session: Session) -> None:
    user = _user(session)
    assert user.id is not None
    quantity = Decimal("12345678901234567890.123456789012345678")
    cost_basis = Decimal("9999999999999999999999.12345678")
    price = Decimal("0.000000012345")
    volume = Decimal("1234567890123456789012.00000001")
    session.add(
        Position(
            user_id=user.id,
            exchange_id=1,
            symbol="PEPE",
            quantity=quantity,
            available_quantity=Decimal("0.000000000000000001"),
            cost_basis=cost_basis,
        )
    )
    session.add(_alert(exchange_id=1, price=price, trigger_value=Decimal("-150.123456789012")))
    session.add(
        ExchangeSymbol(
            exchange_id=1,
            symbol="PEPE-USD",
            base_currency="PEPE",
            quote_currency="USD",
            volume_24h=volume,
            market_cap=volume,
        )
    )
    session.commit()
    session.expire_all()

    position = session.exec(select(Position)).one()
    alert = session.exec(select(AlertHistory)).one()
    symbol = session.exec(select(ExchangeSymbol)).one()
    assert (position.quantity, position.cost_basis) == (quantity, cost_basis)
    assert position.available_quantity == Decimal("1E-18")
    assert isinstance(position.quantity, Decimal)
    assert (alert.price, alert.trigger_value) == (price, Decimal("-150.123456789012"))
    assert (symbol.volume_24h, symbol.market_cap) == (volume, volume)


def test_json_columns_round_trip(session: Session) -> None:
    exchange = session.get(Exchange, 2)
    assert exchange is not None
    assert exchange.fee_schedule == {"maker": 0.001, "taker": 0.001}
    session.add(_alert(exchange_id=2, details={"timeframes": [{"tf": "1h", "v": -151.5}]}))
    session.commit()
    session.expire_all()
    alert = session.exec(select(AlertHistory)).one()
    assert alert.details == {"timeframes": [{"tf": "1h", "v": -151.5}]}
    assert alert.triggered_at == datetime(2024, 5, 1, 12, tzinfo=UTC)
