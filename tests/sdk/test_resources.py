"""The SDK's other resources against the live gateway: models, templates (CRUD, versions, render,
restore, use in a chat request) and the usage report, each scoped to the key's tenant."""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal

import meshapi
import pytest

from keys.services import CreatedKey
from simulator.server import SimulatorServer
from tests.support.waiting import wait_until
from usage.models import UsageEvent
from usage.rollups import usage_rollups_refresh

TODAY = dt.datetime.now(dt.UTC).date()


@pytest.fixture
def globex_mesh(mesh_url: str, globex_key: CreatedKey) -> meshapi.MeshAPI:
    return meshapi.MeshAPI(base_url=mesh_url, token=globex_key.plaintext)


def test_models_list(mesh: meshapi.MeshAPI) -> None:
    page = mesh.models.list()
    ids = [m.id for m in page.data]
    assert "openai/gpt-4o-mini" in ids and ids == sorted(ids)
    assert not any(i.startswith("anthropic/") for i in ids)  # its provider is not configured
    mini = next(m for m in page.data if m.id == "openai/gpt-4o-mini")
    assert mini.owned_by == "openai" and mini.pricing is not None
    assert Decimal(mini.pricing.input_per_mtok_usd or "0") > 0


def test_models_retrieve(mesh: meshapi.MeshAPI) -> None:
    model = mesh.models.retrieve("openai/gpt-4o-mini")  # the slash stays in the path
    assert (model.id, model.owned_by, model.context_window) == ("openai/gpt-4o-mini", "openai", 128_000)
    assert model.pricing is not None and Decimal(model.pricing.output_per_mtok_usd or "0") > 0
    assert model.model_dump() == next(m for m in mesh.models.list().data if m.id == model.id).model_dump()
    with pytest.raises(meshapi.NotFoundError) as caught:
        mesh.models.retrieve("openai/no-such-model")
    assert caught.value.code == "model_not_found"


def create_support_template(mesh: meshapi.MeshAPI) -> meshapi.Template:
    return mesh.templates.create(
        name="support-reply",
        description="Replies for the help desk",
        messages=[meshapi.ChatMessage(role="system", content="You help {{company}} ({{ plan }}).")],
        params={"temperature": 0.2},
        variables=[meshapi.TemplateVariable(name="plan", default="Free")],
    )


def test_template_lifecycle(mesh: meshapi.MeshAPI, simulator: SimulatorServer) -> None:
    created = create_support_template(mesh)
    assert (created.name, created.version, created.slots) == ("support-reply", 1, ["company", "plan"])
    assert mesh.templates.retrieve("support-reply").id == created.id
    assert mesh.templates.retrieve(created.id).name == "support-reply"  # by UUID too
    assert [t.name for t in mesh.templates.list().data] == ["support-reply"]

    changed = mesh.templates.update(
        "support-reply", messages=[{"role": "system", "content": "You help {{company}} politely."}]
    )
    assert changed.version == 2 and changed.slots == ["company"]
    renamed = mesh.templates.update("support-reply", description="v2 wording")
    assert renamed.version == 2 and renamed.description == "v2 wording"

    versions = mesh.templates.versions("support-reply")
    assert [v.version for v in versions.data] == [2, 1] and versions.data[0].active

    preview = mesh.templates.render("support-reply@1", variables={"company": "Acme"})
    assert preview.version == 1
    assert preview.messages == [{"role": "system", "content": "You help Acme (Free)."}]

    restored = mesh.templates.restore("support-reply", version=1)
    assert (restored.version, restored.restored_from, restored.active) == (3, 1, True)

    reply = mesh.chat.completions.create(
        meshapi.ChatCompletionParams(
            model="openai/gpt-4o-mini",
            template="support-reply",
            variables={"company": "Acme", "plan": "Pro"},
            messages=[meshapi.ChatMessage(role="user", content="Hi")],
        )
    )
    assert reply.choices[0].message.content
    sent = [r for r in simulator.requests() if r["path"].endswith("/chat/completions")][-1]["body"]
    assert sent["messages"][0] == {"role": "system", "content": "You help Acme (Pro)."}
    assert sent["temperature"] == 0.2

    mesh.templates.delete("support-reply")
    with pytest.raises(meshapi.NotFoundError):
        mesh.templates.retrieve("support-reply")


def test_template_validation_errors_name_the_field(mesh: meshapi.MeshAPI) -> None:
    with pytest.raises(meshapi.ValidationError) as caught:
        mesh.templates.create(name="bad name!", messages=[{"role": "system", "content": "x"}])
    assert any("name" in d.loc for d in caught.value.details)


def test_templates_are_the_tenants_own(mesh: meshapi.MeshAPI, globex_mesh: meshapi.MeshAPI) -> None:
    created = create_support_template(mesh)
    with globex_mesh:
        assert globex_mesh.templates.list().data == []
        for ref in ("support-reply", created.id):
            with pytest.raises(meshapi.NotFoundError):
                globex_mesh.templates.retrieve(ref)
        with pytest.raises(meshapi.NotFoundError):
            globex_mesh.templates.delete(created.id)
    assert mesh.templates.retrieve(created.id).name == "support-reply"


def test_async_templates(mesh_url: str, acme_key: CreatedKey) -> None:
    async def run() -> list[int]:
        async with meshapi.AsyncMeshAPI(base_url=mesh_url, token=acme_key.plaintext) as mesh:
            await mesh.templates.create(
                name="greeting", messages=[{"role": "system", "content": "Hi {{who}}"}]
            )
            await mesh.templates.update("greeting", messages=[{"role": "system", "content": "Hello {{who}}"}])
            preview = await mesh.templates.render("greeting", variables={"who": "Ada"})
            assert preview.messages[0]["content"] == "Hello Ada"
            page = await mesh.templates.versions("greeting")
            await mesh.templates.delete("greeting")
            return [v.version for v in page.data]

    assert asyncio.run(run()) == [2, 1]


def test_usage_query(mesh: meshapi.MeshAPI, globex_mesh: meshapi.MeshAPI, acme_key: CreatedKey) -> None:
    for session in ("checkout", "checkout", "search"):
        mesh.chat.completions.create(
            meshapi.ChatCompletionParams(
                model="openai/gpt-4o-mini",
                session_id=session,
                messages=[meshapi.ChatMessage(role="user", content="Hi")],
            )
        )
    with globex_mesh:
        globex_mesh.chat.completions.create(
            meshapi.ChatCompletionParams(
                model="openai/gpt-4o-mini",
                session_id="checkout",
                messages=[{"role": "user", "content": "Hi"}],  # type: ignore[list-item]  # plain dicts pass too
            )
        )
        wait_until(lambda: UsageEvent.objects.count() == 4, what="four ledger events")
        usage_rollups_refresh()
        globex_report = globex_mesh.usage.query(group_by="session_id")
    report = mesh.usage.query(date_from=TODAY - dt.timedelta(days=1), date_to=TODAY, group_by="session_id")
    assert (report.date_from, report.date_to, report.group_by) == (
        TODAY - dt.timedelta(days=1),
        TODAY,
        "session_id",
    )
    groups = {g.group: g.totals.requests for g in report.data}
    assert groups == {"checkout": 2, "search": 1}
    assert report.totals.requests == 3 and report.totals.cost_usd > 0
    events = UsageEvent.objects.filter(tenant_id=acme_key.api_key.tenant_id)
    assert report.totals.cost_usd == sum(e.cost_usd for e in events)
    assert globex_report.totals.requests == 1

    only = mesh.usage.query(session_id="search", group_by="day")
    assert only.totals.requests == 1 and only.data[0].group == TODAY.isoformat()
    by_key = mesh.usage.query(group_by="key", key=acme_key.api_key.prefix)
    assert by_key.data[0].key is not None and by_key.data[0].key.prefix == acme_key.api_key.prefix
    with pytest.raises(meshapi.ValidationError):
        mesh.usage.query(date_from=TODAY, date_to=TODAY - dt.timedelta(days=1))
