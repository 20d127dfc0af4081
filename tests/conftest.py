"""Shared fixtures: real PostgreSQL and Redis, the upstream simulator, the gateway over HTTP,
and two tenants (acme, globex) for every isolation test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from django.conf import settings

from keys.models import Tenant
from keys.services import CreatedKey, api_key_create, tenant_create
from routing.catalog import catalog_seed
from simulator.server import SimulatorServer
from tests.support.gateway import GatewayServer
from tests.support.ledger import LedgerFlusher
from tests.support.secret_scan import LOG_SECTIONS, LogTail, secrets_in


def pytest_configure(config: pytest.Config) -> None:
    """Fail loudly, before any test, when the real services are missing."""
    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        raise pytest.UsageError(f"Redis is not reachable at {settings.REDIS_URL}: {error}") from error
    # As every deploy does: the admin pages (in-process and in the gateway) need the hashed manifest.
    from django.core.management import call_command

    call_command("collectstatic", interactive=False, verbosity=0)


@pytest.fixture(scope="session")
def simulator() -> Iterator[SimulatorServer]:
    with SimulatorServer() as server:
        yield server


def gateway_env(simulator: SimulatorServer, **overrides: str) -> dict[str, str]:
    """The environment a gateway process needs to use this test run's database and Redis."""
    from django.db import connection

    database = connection.settings_dict
    env = {
        "DJANGO_SETTINGS_MODULE": "meshplatform.settings.test",
        "DATABASE_URL": (
            f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"
        ),
        "REDIS_URL": settings.REDIS_URL,
        "SECRET_KEY": "test-secret",
        "OPENAI_API_KEY": "sk-sim-openai",
        "OPENAI_BASE_URL": simulator.openai_base_url,
        "OPENROUTER_API_KEY": "sk-sim-openrouter",
        "OPENROUTER_BASE_URL": simulator.openai_base_url,
        "ANTHROPIC_API_KEY": "",
        "GEMINI_API_KEY": "",
        "MESH_CATALOG_CHECK_INTERVAL_S": "0",
        "MESH_UPSTREAM_TIMEOUT_S": "30",
        # No same-provider retries here, so tests of clients' own retries count their attempts; the
        # default (1) is tested on the gateway of tests/providers/.
        "MESH_UPSTREAM_RETRIES": "0",
    }
    env.update(overrides)
    return env


@pytest.fixture(scope="session")
def ledger_flusher(django_db_setup: Any) -> Iterator[LedgerFlusher]:
    """Flushes the usage write-ahead stream into the test database, as the beat task does in production."""
    with LedgerFlusher() as flusher:
        yield flusher


@pytest.fixture(scope="session")
def gateway_server(
    simulator: SimulatorServer, django_db_setup: Any, django_db_blocker: Any, ledger_flusher: LedgerFlusher
) -> Iterator[GatewayServer]:
    """One gateway with two worker processes for the whole session (as production runs it)."""
    server = GatewayServer(env=gateway_env(simulator), workers=2)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def admin_gateway(
    simulator: SimulatorServer, transactional_db: None, ledger_flusher: LedgerFlusher
) -> Iterator[GatewayServer]:
    """A gateway of this test's own, for admin pages that write: admin writes log LogEntry rows,
    and the shared gateway's workers cache content-type ids an earlier test's flush renumbered."""
    catalog_seed()
    simulator.reset()
    ledger_flusher.resume()
    server = GatewayServer(env=gateway_env(simulator), workers=1)
    server.start()
    yield server
    server.stop()
    ledger_flusher.pause()


_gateway_logs = LogTail()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """After each test: its captured logs and stderr, and what the gateways logged meanwhile,
    hold no key, Authorization value or provider key (else the test errors at teardown)."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when != "teardown":
        return
    logged = [content for name, content in report.sections if name.startswith(LOG_SECTIONS)]
    logged.append(_gateway_logs.new_text(GatewayServer.log_files))
    leaks = secrets_in("\n".join(logged))
    if leaks and report.passed:
        report.outcome = "failed"
        report.longrepr = "secrets in the log output: " + "; ".join(sorted(set(leaks)))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    from tests.support.browser import ARTIFACTS_DIR

    if ARTIFACTS_DIR.exists():
        terminalreporter.write_line(f"admin screenshots: {ARTIFACTS_DIR}")


@pytest.fixture(autouse=True)
def _clean_redis() -> None:
    """Each test starts with empty counters and caches (the test Redis database only)."""
    redis.Redis.from_url(settings.REDIS_URL).flushdb()


@pytest.fixture
def gateway(
    gateway_server: GatewayServer,
    simulator: SimulatorServer,
    transactional_db: None,
    ledger_flusher: LedgerFlusher,
) -> Iterator[GatewayServer]:
    """The running gateway, with the catalog seeded and the simulator reset for this test."""
    catalog_seed()
    simulator.reset()
    ledger_flusher.resume()
    yield gateway_server
    # pytest-django truncates every table next; a flush writing then would deadlock with it.
    ledger_flusher.pause()


@pytest.fixture
def tenant_acme(transactional_db: None) -> Tenant:
    return tenant_create(name="acme")


@pytest.fixture
def tenant_globex(transactional_db: None) -> Tenant:
    return tenant_create(name="globex")


@pytest.fixture
def acme_key(tenant_acme: Tenant) -> CreatedKey:
    return api_key_create(tenant=tenant_acme, name="acme main")


@pytest.fixture
def globex_key(tenant_globex: Tenant) -> CreatedKey:
    return api_key_create(tenant=tenant_globex, name="globex main")


@pytest.fixture
def api_url(gateway: GatewayServer) -> str:
    return f"{gateway.base_url}/v1"


@pytest.fixture
def acme_http(api_url: str, acme_key: CreatedKey) -> Iterator[httpx.Client]:
    """Raw httpx client with acme's key, for wire-level checks."""
    with httpx.Client(
        base_url=api_url, headers={"Authorization": f"Bearer {acme_key.plaintext}"}, timeout=30
    ) as client:
        yield client


@pytest.fixture
def acme_openai(api_url: str, acme_key: CreatedKey) -> Any:
    """The official OpenAI SDK pointed at the gateway with acme's key."""
    from openai import OpenAI

    client = OpenAI(base_url=api_url, api_key=acme_key.plaintext, max_retries=0, timeout=30)
    yield client
    client.close()


def chat_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "openai/gpt-4o-mini",
        "messages": [{"role": "user", "content": "Say hello"}],
    }
    body.update(overrides)
    return body


def role_user(username: str, password: str, role: str, tenant: Tenant | None = None) -> Any:
    """A staff user in one of the three roles the migrations create (keys/roles.py); a tenant
    admin is also a member of `tenant`. The roles are re-synced: transactional tests' flushes
    remove the groups the migration made."""
    from django.apps import apps as django_apps
    from django.contrib.auth.models import Group, User

    from keys.models import TenantMember
    from keys.roles import roles_sync

    roles_sync(django_apps)
    user = User.objects.create_user(username, password=password, is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    if tenant is not None:
        TenantMember.objects.create(user=user, tenant=tenant)
    return user
