"""Sign-in, roles and project scope, enforced by the server on every route (issue #7).

The route table below must name every route of the app: a new route that nobody classified
fails ``test_every_route_is_classified``, and each classified route is then walked without
credentials, with an agent token, with a viewer, outside its project scope and without CSRF.
Real SQLite stores and spool; nothing of failboard's is mocked.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from failboard.auth import hash_password, token_digest
from failboard.config import parse_settings
from failboard.exceptions import ConfigError
from failboard.web import create_app
from tests.integration.test_web import _project

SECRET = "s" * 40
PASSWORD = "correct horse battery staple"
USERS = {  # name: (role, projects)
    "root": ("admin", ["*"]),
    "ops": ("operator", ["*"]),
    "support": ("viewer", ["shop"]),
    "shopops": ("operator", ["shop"]),
}
TOKENS = {  # name: (role, projects)
    "viewer": ("viewer", ["*"]),
    "operator": ("operator", ["*"]),
    "admin": ("admin", ["*"]),
    "shop-viewer": ("viewer", ["shop"]),
    "shop-operator": ("operator", ["shop"]),
    "shop-agent": ("agent", ["shop"]),
}


def _raw(name: str) -> str:
    return f"fb_test_token_{name}_0123456789abcdef"


@dataclass
class World:
    app: FastAPI
    jobs: dict[str, str]  # project -> a job id
    actions: dict[str, int]  # project -> a pending action id

    def client(self, address: str = "192.0.2.10") -> TestClient:
        return TestClient(self.app, client=(address, 40000), follow_redirects=False)

    def bearer(self, token: str, address: str = "192.0.2.10") -> TestClient:
        client = self.client(address)
        client.headers["Authorization"] = f"Bearer {_raw(token)}"
        return client


def _config(tmp: Path) -> str:
    shop = _project(tmp / "shop.db", "App\\Jobs\\Mail", 3)
    billing = _project(tmp / "billing.db", "App\\Jobs\\Charge", 2)
    hashed = hash_password(PASSWORD)
    text = f"""
[spool]
url = "sqlite:///{tmp}/spool.db"
[server]
secret_key = "{SECRET}"
proxy_user_header = "X-Forwarded-User"
trusted_proxies = ["10.0.0.0/8"]
[[projects]]
key = "shop"
driver = "laravel"
url = "{shop}"
[[projects]]
key = "billing"
driver = "laravel"
url = "{billing}"
"""
    for name, (role, projects) in USERS.items():
        text += f"""
[[users]]
name = "{name}"
password_hash = "{hashed}"
role = "{role}"
projects = {projects!r}
""".replace("'", '"')
    text += """
[[users]]
name = "sso"
role = "viewer"
projects = ["shop"]
"""
    for name, (role, projects) in TOKENS.items():
        text += f"""
[[tokens]]
name = "{name}"
sha256 = "{token_digest(_raw(name))}"
role = "{role}"
projects = {projects!r}
""".replace("'", '"')
    return text


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("access")
    app = create_app(parse_settings(_config(tmp), source=tmp / "f.toml"), inline=False)
    app.state.board.spool.migrate()
    admin = TestClient(app, follow_redirects=False)
    admin.headers["Authorization"] = f"Bearer {_raw('admin')}"
    jobs, actions = {}, {}
    for project in ("shop", "billing"):
        items = admin.get("/api/v1/jobs", params={"project": project}).json()["items"]
        jobs[project] = items[0]["id"]
        made = admin.post(
            "/api/v1/actions",
            json={"project": project, "action": "retry", "job_ids": [items[-1]["id"]]},
        )
        assert made.status_code == 202, made.text
        actions[project] = made.json()["id"]
    yield World(app, jobs, actions)
    app.state.board.close()


# -- the route table ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """``need``: public | any (signed in) | read | act | admin | metrics. ``json``: unsigned
    requests get 401 (else a redirect to /login). ``url``/``body`` take (world, project)."""

    need: str
    url: Callable[[World, str], str]
    body: Callable[[World, str], Any] | None = None
    json: bool = True
    scoped: str = ""  # "project": 403 outside scope; "action": 404 outside scope


def _url(template: str) -> Callable[[World, str], str]:
    def build(w: World, p: str) -> str:
        return template.format(p=p, job=w.jobs[p], action=w.actions[p])

    return build


ROUTES: dict[tuple[str, str], Route] = {
    ("GET", "/healthz"): Route("public", _url("/healthz")),
    ("GET", "/static/pygments.css"): Route("public", _url("/static/pygments.css")),
    ("GET", "/static"): Route("public", _url("/static/app.css")),
    ("GET", "/static/apidocs"): Route("public", _url("/static/apidocs/swagger-ui-bundle.js")),
    ("GET", "/login"): Route("public", _url("/login"), json=False),
    ("POST", "/login"): Route("public", _url("/login")),
    ("POST", "/logout"): Route("public", _url("/logout")),
    ("GET", "/openapi.json"): Route("any", _url("/openapi.json")),
    ("GET", "/docs"): Route("any", _url("/docs"), json=False),
    ("GET", "/metrics"): Route("metrics", _url("/metrics")),
    ("GET", "/api/v1/projects"): Route("read", _url("/api/v1/projects")),
    ("GET", "/api/v1/jobs"): Route("read", _url("/api/v1/jobs?project={p}"), scoped="project"),
    ("GET", "/api/v1/jobs/{project}/{job_id:path}"): Route(
        "read", _url("/api/v1/jobs/{p}/{job}"), scoped="project"
    ),
    ("GET", "/api/v1/groups"): Route("read", _url("/api/v1/groups?project={p}"), scoped="project"),
    ("POST", "/api/v1/actions"): Route(
        "act",
        _url("/api/v1/actions"),
        lambda w, p: {"project": p, "action": "retry", "job_ids": [w.jobs[p]]},
        scoped="project",
    ),
    ("GET", "/api/v1/actions"): Route(
        "read", _url("/api/v1/actions?project={p}"), scoped="project"
    ),
    ("GET", "/api/v1/actions/{action_id}"): Route(
        "read", _url("/api/v1/actions/{action}"), scoped="action"
    ),
    ("POST", "/api/v1/actions/{action_id}/cancel"): Route(
        "act", _url("/api/v1/actions/{action}/cancel"), scoped="action"
    ),
    ("GET", "/ui/counts"): Route("read", _url("/ui/counts?project={p}"), scoped="project"),
    ("GET", "/ui/queues"): Route("read", _url("/ui/queues?project={p}"), scoped="project"),
    ("POST", "/ui/actions"): Route(
        "act",
        _url("/ui/actions"),
        lambda w, p: {
            "action": "retry",
            "jobs": [{"project": p, "id": w.jobs[p]}],
            "key": f"walk-{p}-key",
        },
        scoped="project",
    ),
    ("POST", "/ui/selections"): Route(
        "act",
        _url("/ui/selections"),
        lambda w, p: {"kind": "matching", "action": "delete", "query": f"project={p}"},
        scoped="project",
    ),
    ("POST", "/ui/selections/{selection_id}"): Route("act", _url("/ui/selections/nothing")),
    ("POST", "/ui/actions/{action_id}/cancel"): Route(
        "act", _url("/ui/actions/{action}/cancel"), scoped="action"
    ),
    ("GET", "/"): Route("read", _url("/?project={p}"), json=False, scoped="project"),
    ("GET", "/jobs/{project}/{job_id:path}"): Route(
        "read", _url("/jobs/{p}/{job}"), json=False, scoped="project"
    ),
    ("GET", "/raw/{project}/{job_id:path}"): Route(
        "read", _url("/raw/{p}/{job}"), json=False, scoped="project"
    ),
    ("GET", "/actions"): Route("read", _url("/actions?project={p}"), json=False, scoped="project"),
    ("GET", "/groups"): Route("read", _url("/groups?project={p}"), json=False, scoped="project"),
    ("GET", "/projects"): Route("read", _url("/projects"), json=False),
}
AGENT_PREFIX = "/api/v1/agent/"  # web/agent_api.py authenticates its own agent tokens


def _flatten(routes: list[Any]) -> Iterator[tuple[str, str]]:
    for route in routes:
        if hasattr(route, "effective_route_contexts"):  # FastAPI's included routers
            yield from _flatten(list(route.effective_route_contexts()))
            continue
        methods = getattr(route, "methods", None) or {"GET"}
        for method in sorted(set(methods) - {"HEAD"}):
            yield method, route.path


def _routes(app: FastAPI) -> set[tuple[str, str]]:
    return set(_flatten(list(app.routes)))


def _send(client: TestClient, method: str, url: str, body: Any = None, **kw: Any) -> Any:
    if method == "GET":
        return client.get(url, **kw)
    return client.post(url, json=body if body is not None else {}, **kw)


def _walk(need: set[str]) -> list[tuple[str, str, Route]]:
    return [(m, p, r) for (m, p), r in ROUTES.items() if r.need in need]


def _signed_in(world: World, name: str, address: str) -> tuple[TestClient, str]:
    client = world.client(address)
    token = _csrf(client.get("/login").text)
    response = client.post(
        "/login",
        data={"name": name, "password": PASSWORD, "csrf_token": token, "next": "/"},
    )
    assert response.status_code == 303, response.text
    return client, _csrf(client.get("/").text)


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf[-_]token" (?:content|value)="([0-9a-f]{64})"', page)
    assert found, page[:500]
    return found.group(1)


# -- the walk ----------------------------------------------------------------------------------


def test_every_route_is_classified(world: World) -> None:
    found = {(m, p) for m, p in _routes(world.app) if not p.startswith(AGENT_PREFIX)}
    assert found == set(ROUTES), (
        f"unclassified routes: {found - set(ROUTES)}; gone: {set(ROUTES) - found}"
    )


def test_without_credentials_every_route_but_the_public_ones_is_refused(world: World) -> None:
    client = world.client()
    for method, path, route in _walk({"any", "read", "act", "admin", "metrics"}):
        url = route.url(world, "shop")
        response = _send(client, method, url, route.body(world, "shop") if route.body else None)
        if route.json:
            assert response.status_code == 401, (method, path, response.status_code)
            assert response.headers["www-authenticate"] == "Bearer"
            assert "detail" in response.json()
        else:
            assert response.status_code == 303, (method, path, response.status_code)
            target = urlsplit(response.headers["location"])
            assert target.path == "/login"
            assert parse_qs(target.query)["next"] == [url]
    for method, path, route in _walk({"public"}):
        if method == "GET":
            response = client.get(route.url(world, "shop"))
            assert response.status_code == 200, (method, path)


def test_a_bad_token_is_401_and_never_falls_back_to_the_cookie(world: World) -> None:
    client, _ = _signed_in(world, "ops", "192.0.2.20")
    client.headers["Authorization"] = "Bearer fb_not_a_token"
    assert client.get("/api/v1/jobs").status_code == 401
    client.headers["Authorization"] = "Basic b3BzOnB3"
    assert client.get("/api/v1/jobs").status_code == 401


def test_an_agent_token_may_use_nothing_but_the_agent_api(world: World) -> None:
    client = world.bearer("shop-agent")
    for method, path, route in _walk({"any", "read", "act", "admin", "metrics"}):
        body = route.body(world, "shop") if route.body else None
        response = _send(client, method, route.url(world, "shop"), body)
        assert response.status_code == 403, (method, path, response.status_code)


def test_a_viewer_reads_everything_and_writes_nothing(world: World) -> None:
    client = world.bearer("viewer")
    for method, path, route in _walk({"any", "read", "act", "admin", "metrics"}):
        body = route.body(world, "shop") if route.body else None
        response = _send(client, method, route.url(world, "shop"), body)
        expected = 403 if method == "POST" else 200
        assert response.status_code == expected, (method, path, response.status_code)


def test_outside_its_projects_a_principal_gets_403_and_actions_are_404(world: World) -> None:
    for token in ("shop-viewer", "shop-operator"):
        client = world.bearer(token)
        for method, path, route in _walk({"read", "act"}):
            if not route.scoped or (method == "POST" and token == "shop-viewer"):
                continue
            body = route.body(world, "billing") if route.body else None
            response = _send(client, method, route.url(world, "billing"), body)
            expected = 404 if route.scoped == "action" else 403
            assert response.status_code == expected, (token, method, path, response.status_code)
            # The same route on its own project is fine.
            if method == "GET":
                mine = client.get(route.url(world, "shop"))
                assert mine.status_code == 200, (token, path, mine.status_code)
        # A project that does not exist at all is refused the same way: nothing leaks.
        assert client.get("/api/v1/jobs?project=nosuch").status_code == 403


def test_listings_hold_only_the_principals_projects(world: World) -> None:
    client = world.bearer("shop-viewer")
    jobs = client.get("/api/v1/jobs", params={"limit": 500}).json()
    assert {j["project"] for j in jobs["items"]} == {"shop"}
    assert [p["key"] for p in client.get("/api/v1/projects").json()] == ["shop"]
    assert {a["project"] for a in client.get("/api/v1/actions").json()} == {"shop"}
    for group in client.get("/api/v1/groups").json():
        assert group["projects"] == ["shop"]
    assert set(client.get("/ui/counts").json()["projects"]) == {"shop"}
    assert set(client.get("/ui/queues").json()) == {"shop"}
    for page in ("/", "/groups", "/actions", "/projects", f"/jobs/shop/{world.jobs['shop']}"):
        text = client.get(page).text
        assert "billing" not in text and "Charge" not in text, page
    # /metrics covers every project: not for a principal of some.
    assert client.get("/metrics").status_code == 403
    assert world.bearer("viewer").get("/metrics").status_code == 200


def test_roles_decide_which_actions_may_be_requested(world: World) -> None:
    def post(token: str, **body: Any) -> int:
        response = world.bearer(token).post("/api/v1/actions", json={"project": "shop", **body})
        return response.status_code

    job = [world.jobs["shop"]]
    assert post("operator", action="retry", job_ids=job) == 202
    assert post("operator", action="delete", job_ids=job) == 202
    assert post("operator", action="retry_queue", queue="default") == 202
    assert post("operator", action="retry_queue", queue=None) == 403
    assert post("operator", action="prune", hours=1) == 403
    assert post("admin", action="retry_queue", queue=None) == 202
    assert post("admin", action="prune", hours=1) == 202
    made = world.bearer("operator").post(
        "/api/v1/actions", json={"project": "shop", "action": "retry", "job_ids": job}
    )
    # requested_by is the principal, not what the client claims to be.
    assert made.json()["requested_by"] == "token:operator"
    claimed = world.bearer("operator").post(
        "/api/v1/actions",
        json={"project": "shop", "action": "delete", "job_ids": job},
        headers={"X-Failboard-User": "someone-else"},
    )
    assert claimed.json()["requested_by"] == "token:operator"


def test_the_browsers_bulk_paths_check_roles_too(world: World) -> None:
    client, csrf = _signed_in(world, "ops", "192.0.2.30")
    headers = {"X-CSRF-Token": csrf}
    every = client.post("/ui/selections", json={"kind": "queue", "queue": None}, headers=headers)
    assert every.status_code == 403  # every queue: an admin's action
    prune = client.post("/ui/selections", json={"kind": "prune", "hours": 1}, headers=headers)
    assert prune.status_code == 403
    named = client.post(
        "/ui/selections", json={"kind": "queue", "queue": "default"}, headers=headers
    )
    assert named.status_code == 200
    made = client.post(f"/ui/selections/{named.json()['selection']}", headers=headers).json()
    assert {a["requested_by"] for a in made["actions"]} == {"ops"}


def test_cookie_writes_need_the_csrf_token(world: World) -> None:
    client, csrf = _signed_in(world, "root", "192.0.2.40")
    for method, path, route in _walk({"act"}):
        body = route.body(world, "shop") if route.body else None
        refused = _send(client, method, route.url(world, "shop"), body)
        assert refused.status_code == 403, (method, path)
        assert "CSRF" in refused.json()["detail"]
        bad = _send(client, method, route.url(world, "shop"), body, headers={"X-CSRF-Token": "0"})
        assert bad.status_code == 403, (method, path)
    ok = client.post(
        "/api/v1/actions",
        json={"project": "shop", "action": "retry", "job_ids": [world.jobs["shop"]]},
        headers={"X-CSRF-Token": csrf},
    )
    assert ok.status_code == 202 and ok.json()["requested_by"] == "root"


def test_the_viewer_page_shows_no_action_buttons(world: World) -> None:
    viewer, _ = _signed_in(world, "support", "192.0.2.50")
    page = viewer.get("/").text
    assert 'data-act="retry"' not in page and 'id="bulk-retry"' not in page
    assert "row-check" not in page and "retry-queue-open" not in page
    assert "data-group-act" not in viewer.get("/groups").text
    assert "data-cancel" not in viewer.get("/actions").text
    assert "support · viewer" in page and 'id="sign-out"' in page
    operator, _ = _signed_in(world, "shopops", "192.0.2.51")
    page = operator.get("/").text
    assert 'data-act="retry"' in page and "prune-open" not in page
    assert "data-cancel" in operator.get("/actions").text


# -- sign-in, sessions, sign-out ---------------------------------------------------------------


def test_sign_in_rotates_the_session_and_sign_out_ends_it(world: World) -> None:
    client = world.client("192.0.2.60")
    form = client.get("/login?next=/groups")
    before_cookie = client.cookies["failboard_session"]
    before_csrf = _csrf(form.text)
    assert client.get("/").status_code == 303
    response = client.post(
        "/login",
        data={"name": "ops", "password": PASSWORD, "csrf_token": before_csrf, "next": "/groups"},
    )
    assert response.status_code == 303 and response.headers["location"] == "/groups"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    after_cookie = client.cookies["failboard_session"]
    assert after_cookie != before_cookie
    after_csrf = _csrf(client.get("/").text)
    assert after_csrf != before_csrf  # a token planted before sign-in is worth nothing after
    # The cookie from before sign-in (a fixation attempt) is not signed in.
    planted = world.client("192.0.2.61")
    planted.cookies["failboard_session"] = before_cookie
    assert planted.get("/").status_code == 303
    # Sign-out needs the CSRF token, ends the session, and a replayed cookie is refused.
    assert client.post("/logout", data={"csrf_token": "nope"}).status_code == 403
    out = client.post("/logout", data={"csrf_token": after_csrf})
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert client.get("/").status_code == 303
    replay = world.client("192.0.2.62")
    replay.cookies["failboard_session"] = after_cookie
    assert replay.get("/").status_code == 303


def test_sign_in_failures_and_the_form_csrf(world: World) -> None:
    client = world.client("192.0.2.70")
    csrf = _csrf(client.get("/login").text)
    no_csrf = client.post("/login", data={"name": "ops", "password": PASSWORD})
    assert no_csrf.status_code == 403
    wrong = client.post("/login", data={"name": "ops", "password": "nope", "csrf_token": csrf})
    assert wrong.status_code == 401 and "Wrong name or password" in wrong.text
    nobody = client.post("/login", data={"name": "ghost", "password": "x", "csrf_token": csrf})
    assert nobody.status_code == 401
    # A proxy-only user has no password to sign in with.
    sso = client.post("/login", data={"name": "sso", "password": "", "csrf_token": csrf})
    assert sso.status_code == 401
    # Never a redirect to another site.
    for evil in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "/%0a/x"):
        fresh, _ = _signed_in(world, "ops", "192.0.2.71")
        page = fresh.get("/login", params={"next": evil})
        assert page.status_code == 303 and page.headers["location"] in ("/", evil), evil
        assert not page.headers["location"].startswith(("//", "http", "/\\"))


def test_sign_in_is_rate_limited_per_name_and_per_address(world: World) -> None:
    client = world.client("192.0.2.80")
    csrf = _csrf(client.get("/login").text)

    def attempt(name: str, password: str, c: TestClient = client, token: str = csrf) -> Any:
        return c.post("/login", data={"name": name, "password": password, "csrf_token": token})

    for _ in range(5):
        assert attempt("shopops", "wrong").status_code == 401
    locked = attempt("shopops", PASSWORD)  # even the right password waits now
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
    # ...from any address: the name is what is limited.
    other = world.client("192.0.2.81")
    token = _csrf(other.get("/login").text)
    assert attempt("shopops", PASSWORD, other, token).status_code == 429
    # One address guessing many names is stopped too.
    guesser = world.client("192.0.2.82")
    token = _csrf(guesser.get("/login").text)
    codes = [attempt(f"name{i}", "wrong", guesser, token).status_code for i in range(21)]
    assert codes[:20] == [401] * 20 and codes[20] == 429


# -- the trusted proxy -------------------------------------------------------------------------


def test_the_proxy_header_is_believed_only_from_a_trusted_peer(world: World) -> None:
    trusted = world.client("10.1.2.3")
    trusted.headers["X-Forwarded-User"] = "sso"
    page = trusted.get("/")
    assert page.status_code == 200 and "sso · viewer" in page.text
    assert [p["key"] for p in trusted.get("/api/v1/projects").json()] == ["shop"]
    assert trusted.get("/api/v1/jobs?project=billing").status_code == 403
    # A proxied browser's write needs the CSRF token like any other.
    csrf = _csrf(page.text)
    write = {"project": "shop", "action": "retry", "job_ids": [world.jobs["shop"]]}
    assert trusted.post("/api/v1/actions", json=write).status_code == 403
    viewer = trusted.post("/api/v1/actions", json=write, headers={"X-CSRF-Token": csrf})
    assert viewer.status_code == 403 and "role" in viewer.json()["detail"]
    # From anywhere else the header is ignored: not signed in.
    untrusted = world.client("192.0.2.90")
    untrusted.headers["X-Forwarded-User"] = "root"
    assert untrusted.get("/api/v1/jobs").status_code == 401
    assert untrusted.get("/").status_code == 303
    # A proxy naming someone failboard does not know: refused, not signed in as anyone.
    stranger = world.client("10.9.9.9")
    stranger.headers["X-Forwarded-User"] = "mallory"
    assert stranger.get("/api/v1/jobs").status_code == 403


# -- configuration -----------------------------------------------------------------------------


def _settings_text(server: str, users: str = "") -> str:
    return f'[spool]\nurl = "sqlite:///:memory:"\n[server]\n{server}\n{users}'


def test_users_need_a_real_secret_key() -> None:
    user = f'[[users]]\nname = "a"\npassword_hash = "{hash_password(PASSWORD)}"\n'
    with pytest.raises(ConfigError, match="secret_key: required"):
        create_app(parse_settings(_settings_text("", user)), inline=False)
    with pytest.raises(ConfigError, match="too weak"):
        create_app(parse_settings(_settings_text('secret_key = "change-me"', user)), inline=False)


def test_proxy_mode_needs_trusted_peers_and_users_need_a_hash_without_it() -> None:
    with pytest.raises(ConfigError, match="trusted_proxies"):
        parse_settings(_settings_text('proxy_user_header = "X-User"'))
    with pytest.raises(ConfigError, match="not an address"):
        parse_settings(_settings_text('trusted_proxies = ["nowhere"]'))
    with pytest.raises(ConfigError, match="no password_hash"):
        parse_settings(_settings_text("", '[[users]]\nname = "a"\n'))


def test_without_any_auth_configured_everything_is_the_local_admin(tmp_path: Path) -> None:
    shop = _project(tmp_path / "shop.db", "App\\Jobs\\Mail", 1)
    text = f'[spool]\nurl = "sqlite:///{tmp_path}/spool.db"\n'
    text += f'[[projects]]\nkey = "shop"\ndriver = "laravel"\nurl = "{shop}"\n'
    app = create_app(parse_settings(text), inline=False)
    app.state.board.spool.migrate()
    with TestClient(app, follow_redirects=False) as client:
        assert client.get("/").status_code == 200
        assert client.get("/login").status_code == 303  # nothing to sign in to
        client.cookies.clear()  # a script: no cookie, so no CSRF token either
        made = client.post(
            "/api/v1/actions",
            json={"project": "shop", "action": "prune", "hours": 1},
            headers={"X-Failboard-User": "me"},
        )
        assert made.status_code == 202 and made.json()["requested_by"] == "api:me"


def test_sign_ins_and_sign_outs_are_in_the_audit_chain(world: World) -> None:
    audit = world.app.state.board.spool.audit
    client = world.client("192.0.2.90")
    csrf = _csrf(client.get("/login").text)
    client.post("/login", data={"name": "ops", "password": "wrong", "csrf_token": csrf})
    signed, token = _signed_in(world, "ops", "192.0.2.91")
    signed.post("/logout", data={"csrf_token": token})
    mine = [
        (entry.event, entry.actor, entry.detail.get("address"))
        for entry in reversed(audit.entries(limit=200))
        if entry.detail.get("address") in ("192.0.2.90", "192.0.2.91")
    ]
    assert mine == [
        ("auth.signin_failed", "ops", "192.0.2.90"),
        ("auth.signin", "ops", "192.0.2.91"),
        ("auth.signout", "ops", "192.0.2.91"),
    ]
    assert audit.verify().ok
