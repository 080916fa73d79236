# Two commands do all set-up: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
PORTAL := $(VENV)/bin/portal
HOST ?= 127.0.0.1
PORT ?= 5000
# Plain-http development server: cookies cannot be Secure there.
RUN_ENV := PORTAL_INSECURE_COOKIES=1

.PHONY: run test test-setup test-postgres test-deploy lint translations bench messages install install-test debian-test-packages oauth-test-provider browser-test-tools worker clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	@mkdir -p $(VENV) && $(PIP) install --quiet --upgrade pip > $(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; exit 1; }

# pip's build warnings (setuptools) would bury the admin's one-time password: kept in a log,
# shown only when the install fails.
$(VENV)/.installed: $(PY) setup.cfg pyproject.toml
	@echo "Installing the portal into $(VENV) (details: $(VENV)/install.log)"
	@$(PIP) install --quiet -e . >> $(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; exit 1; }
	@touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	@$(PIP) install --quiet -e '.[test]' >> $(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; exit 1; }
	@touch $@

install: $(VENV)/.installed translations
install-test: $(VENV)/.installed-test translations

# Compiled when a catalogue changed, so that two runs side by side (CI) never rewrite one under the other's feet.
CATALOGUES := $(wildcard portal/translations/*/LC_MESSAGES/messages.po)
translations: $(CATALOGUES:.po=.mo)
portal/translations/%/LC_MESSAGES/messages.mo: portal/translations/%/LC_MESSAGES/messages.po $(VENV)/.installed
	@out=$$($(PY) -m babel.messages.frontend compile -d portal/translations -l $* 2>&1) || { echo "$$out"; exit 1; }

# The web server in front, the letters worker beside it; stopping one stops both.
run: install
	$(RUN_ENV) $(PORTAL) init-db
	$(RUN_ENV) $(PORTAL) ensure-admin
	@$(RUN_ENV) $(PORTAL) worker & worker=$$!; \
	trap 'kill $$worker 2>/dev/null; wait $$worker 2>/dev/null' EXIT INT TERM; \
	$(RUN_ENV) $(PORTAL) run --host $(HOST) --port $(PORT)

worker: install
	$(RUN_ENV) $(PORTAL) worker

# Installs the servers the tests start (Dovecot, Postfix, Node.js, Chromium, Redis, PostgreSQL) from Debian
# when one is missing and we may; without root, the tests that need it skip and say why.
PG_BIN ?= /usr/lib/postgresql/15/bin
debian-test-packages:
	@missing=""; \
	[ -x /usr/sbin/dovecot ] || missing="$$missing dovecot-core dovecot-pop3d dovecot-imapd"; \
	[ -x /usr/lib/dovecot/lmtp ] || missing="$$missing dovecot-lmtpd"; \
	[ -x /usr/sbin/postfix ] || missing="$$missing postfix"; \
	command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || missing="$$missing nodejs npm"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	[ -x $(PG_BIN)/initdb ] || missing="$$missing postgresql-15"; \
	[ -x /usr/sbin/slapd ] && command -v ldapsearch >/dev/null 2>&1 || missing="$$missing slapd ldap-utils"; \
	[ -x /usr/sbin/nginx ] || missing="$$missing nginx"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "Installing from Debian:$$missing"; \
	    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections; \
	    echo "slapd slapd/no_configuration boolean true" | debconf-set-selections; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else \
	    echo "Not root, so not installing:$$missing (tests that need them will skip)"; \
	  fi; \
	fi

# The OAuth 2.0 test provider (oidc-provider) from its lockfile, again only when the lockfile changed (npm ci
# empties node_modules first); skipped when npm is missing.
OAUTH_PROVIDER := tests/oauth_provider
oauth-test-provider: debian-test-packages
	@if ! command -v npm >/dev/null 2>&1; then echo "npm is missing: the OAuth tests will skip"; \
	elif [ ! $(OAUTH_PROVIDER)/node_modules/.installed -nt $(OAUTH_PROVIDER)/package-lock.json ]; then \
	  (cd $(OAUTH_PROVIDER) && npm ci --no-audit --no-fund --loglevel=error) && touch $(OAUTH_PROVIDER)/node_modules/.installed; \
	fi

# axe-core, which the accessibility audit (tests/test_browser_accessibility.py) injects into every page.
BROWSER_TOOLS := tests/browser_tools
browser-test-tools: debian-test-packages
	@if ! command -v npm >/dev/null 2>&1; then echo "npm is missing: the accessibility audit will skip"; \
	elif [ ! $(BROWSER_TOOLS)/node_modules/.installed -nt $(BROWSER_TOOLS)/package-lock.json ]; then \
	  (cd $(BROWSER_TOOLS) && npm ci --no-audit --no-fund --loglevel=error) && touch $(BROWSER_TOOLS)/node_modules/.installed; \
	fi

test: install-test debian-test-packages oauth-test-provider browser-test-tools lint
	$(PY) -m pytest $(PYTEST_ARGS)

# What .ci/run needs before it starts `make test` and `make test-postgres` side by side: every prerequisite of
# both, so that neither installs anything while the other runs.
test-setup: install-test debian-test-packages oauth-test-provider browser-test-tools

# The style setup.cfg's [flake8] states (lines up to 120), kept by every change.
lint: install-test
	$(PY) -m flake8 portal tests bench wsgi.py

# The database tests again, against a throwaway PostgreSQL cluster the harness starts.
test-postgres: install-test debian-test-packages
	PORTAL_PG_BIN=$(PG_BIN) PORTAL_TEST_POSTGRES=1 $(PY) -m pytest -m "not browser" --ignore=tests/test_deploy_e2e.py $(PYTEST_ARGS)

# The deployment deploy/ describes, end to end: nginx (TLS, /mail/), gunicorn, PostgreSQL, Redis, two workers.
test-deploy: install-test debian-test-packages
	PORTAL_PG_BIN=$(PG_BIN) $(PY) -m pytest -p no:randomly tests/test_deploy_e2e.py $(PYTEST_ARGS)

bench: install-test
	$(PY) bench/run.py

# Refresh the translation catalogues after changing strings.
messages: $(VENV)/.installed
	$(PY) -m babel.messages.frontend extract -F babel.cfg -k _l -k lazy_gettext -k Nn_:1,2 -o portal/translations/messages.pot .
	$(PY) -m babel.messages.frontend update -i portal/translations/messages.pot -d portal/translations --no-fuzzy-matching --ignore-obsolete

clean:
	rm -rf $(VENV) build *.egg-info
