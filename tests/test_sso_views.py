"""Single sign-on's pages without a provider: the admin's settings page, the sign-in page's button, passwords off."""
import pytest

from portal.models import PortalSetting
from portal.secret_box import active_box
from portal.sso import SETTING_KEY, store_settings
from tests.conftest import PASSWORD

SETTINGS = {"company_name": "Example Corp", "discovery_url": "https://id.example.com/.well-known/openid-configuration",
            "client_id": "portal", "client_secret": "s3cret-value", "scopes": "openid email profile",
            "passwords_allowed": True, "provision": False, "department_claim": "department",
            "groups_claim": "groups", "admin_group": ""}


def configure(**overrides):
    store_settings(active_box(), {**SETTINGS, **overrides}, "views-test")


def sign_in(client, employee):
    return client.post("/sign-in", data={"email": employee.email, "password": PASSWORD})


@pytest.mark.parametrize("path, method", [("/admin/sign-in", "get"), ("/admin/sign-in", "post"),
                                          ("/admin/sign-in/check", "post")])
def test_only_admins_reach_the_sign_in_settings(client, make_employee, path, method):
    assert getattr(client, method)(path).status_code == 302  # to the sign-in page
    sign_in(client, make_employee())
    assert getattr(client, method)(path).status_code == 404


def test_the_client_secret_is_stored_encrypted_and_never_shown_again(client, make_employee):
    sign_in(client, make_employee(role="admin"))
    answer = client.post("/admin/sign-in", data={**SETTINGS, "passwords_allowed": "y"})
    assert answer.status_code == 302
    assert "s3cret-value" not in PortalSetting.get(PortalSetting.key == SETTING_KEY).value
    page = client.get("/admin/sign-in").get_data(as_text=True)
    assert "s3cret-value" not in page and "A secret is stored." in page
    assert 'value="Example Corp"' in page and "http://localhost/sso/callback" in page
    # Saving again without a secret keeps the stored one.
    client.post("/admin/sign-in", data={**SETTINGS, "client_secret": "", "company_name": "Example Ltd"})
    from portal.views.sso import current_settings
    with client.application.test_request_context():
        assert current_settings().client_secret == "s3cret-value"
        assert current_settings().company_name == "Example Ltd"


@pytest.mark.parametrize("change", [{"discovery_url": "https://evil.example.net/.well-known/openid-configuration"},
                                    {"client_id": "another-client"}])
def test_a_kept_client_secret_goes_to_no_other_provider_or_client(client, make_employee, change):
    # The stored secret was given for one provider and client: with either changed it must be typed again.
    sign_in(client, make_employee(role="admin"))
    client.post("/admin/sign-in", data={**SETTINGS, "passwords_allowed": "y"})
    before = PortalSetting.get(PortalSetting.key == SETTING_KEY).value

    answer = client.post("/admin/sign-in", data={**SETTINGS, "client_secret": "", **change})

    page = answer.get_data(as_text=True)
    assert answer.status_code == 200
    assert 'id="client_secret-error"' in page and "Type the client secret again" in page
    assert "Leave empty to keep the current one" not in page  # which the error just said it cannot
    assert PortalSetting.get(PortalSetting.key == SETTING_KEY).value == before  # nothing saved
    typed = client.post("/admin/sign-in", data={**SETTINGS, "client_secret": "new-s3cret", **change})
    assert typed.status_code == 302


def test_the_configurations_client_secret_goes_to_no_provider_the_page_names(app, client, make_employee):
    from portal.sso import SsoSettings

    app.config.update(PORTAL_OIDC_DISCOVERY_URL=SETTINGS["discovery_url"], PORTAL_OIDC_CLIENT_ID="portal",
                      PORTAL_OIDC_CLIENT_SECRET="from-the-environment")
    sign_in(client, make_employee(role="admin"))
    elsewhere = "https://evil.example.net/.well-known/openid-configuration"

    answer = client.post("/admin/sign-in", data={**SETTINGS, "client_secret": "", "discovery_url": elsewhere})

    assert answer.status_code == 200 and "Type the client secret again" in answer.get_data(as_text=True)
    assert PortalSetting.get_or_none(PortalSetting.key == SETTING_KEY) is None
    assert client.post("/admin/sign-in", data={**SETTINGS, "client_secret": ""}).status_code == 302  # same place
    assert SsoSettings.from_mapping(app.config, {"discovery_url": elsewhere}).client_secret == ""
    assert SsoSettings.from_mapping(app.config, {}).client_secret == "from-the-environment"


def test_bad_settings_are_explained_beside_the_field_and_nothing_is_saved(client, make_employee):
    sign_in(client, make_employee(role="admin"))
    page = client.post("/admin/sign-in", data={**SETTINGS, "discovery_url": "ftp://id.example.com",
                                               "scopes": "email"}).get_data(as_text=True)
    assert "s https:// address." in page and "The scopes must include openid." in page
    assert PortalSetting.get_or_none(PortalSetting.key == SETTING_KEY) is None


def test_the_sign_in_page_offers_the_company_first_only_when_configured(client):
    page = client.get("/sign-in").get_data(as_text=True)
    assert "Sign in with" not in page
    configure()
    page = client.get("/sign-in?next=/letters").get_data(as_text=True)
    assert page.index("Sign in with Example Corp") < page.index('id="sign-in-form"')
    assert "/sso/start?next=/letters" in page and "break-glass" not in page


def test_passwords_off_refuses_employees_but_admins_keep_the_break_glass(client, app, make_employee):
    configure(passwords_allowed=False)
    page = client.get("/sign-in").get_data(as_text=True)
    assert '<details id="break-glass"' in page and "Administrators: sign in with a password" in page
    clerk, admin = make_employee(), make_employee(role="admin")
    refused = sign_in(client, clerk)
    assert refused.status_code == 200
    assert "Passwords are turned off: sign in with Example Corp." in refused.get_data(as_text=True)
    assert client.get("/").status_code == 302  # not signed in
    wrong = client.post("/sign-in", data={"email": clerk.email, "password": "not-the-password"})
    assert refused.get_data(as_text=True).count("Passwords are turned off") == \
        wrong.get_data(as_text=True).count("Passwords are turned off")  # no oracle for an old password
    assert sign_in(client, admin).status_code == 302
    assert client.get("/").status_code == 200


def test_a_callback_nobody_started_is_refused_with_a_clear_page(client):
    configure()
    answer = client.get("/sso/callback?code=abc&state=forged")
    assert answer.status_code == 403
    assert "its state does not match" in answer.get_data(as_text=True)
    assert client.get("/").status_code == 302


@pytest.fixture
def starts_limited(config):
    config.update(RATELIMIT_ENABLED=True, PORTAL_SSO_START_RATE_LIMIT="2 per minute")
    return config


def test_starting_sign_ins_over_and_over_is_slowed(starts_limited, client):
    """Each "Sign in with" keeps a row on the server: a script starting them without end from one address gets 429."""
    configure()
    assert [client.get("/sso/start").status_code for _ in range(3)][-1] == 429


def test_the_admin_page_in_russian(client, make_employee):
    sign_in(client, make_employee(role="admin", language="ru"))
    configure()
    page = client.get("/admin/sign-in").get_data(as_text=True)
    assert "Вход в портал" in page and "Проверить" in page


def test_starting_without_a_provider_goes_back_to_sign_in_saying_why(client):
    answer = client.get("/sso/start")
    assert answer.status_code == 302 and answer.headers["Location"] == "/sign-in"
    assert "Single sign-on is not configured." in client.get("/sign-in").get_data(as_text=True)
