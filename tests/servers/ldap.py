"""A private OpenLDAP for tests: Debian's slapd from a generated cn=config, StartTLS required, 1,000 people.

The directory looks like a company's: ``ou=people`` with people in departments (inetOrgPerson, an
AD-style ``userAccountControl`` from a small auxiliary class), ``ou=groups`` with an admins group, and a
service account the portal binds as. The frontend's size limit is below the number of people, so a
search that does not page cannot read them all (the root DN, which ignores limits, is only used here
to change entries).
"""
from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import ldap3
from ldap3 import MODIFY_DELETE, MODIFY_REPLACE

from .certificates import ServerCertificate
from .processes import terminate_by_pid_file
from .smtp import HOST, free_port

SLAPD = shutil.which("slapd") or "/usr/sbin/slapd"
SLAPADD = shutil.which("slapadd") or "/usr/sbin/slapadd"
SUFFIX = "dc=example,dc=com"
PEOPLE = f"ou=people,{SUFFIX}"
ADMINS = f"cn=portal-admins,ou=groups,{SUFFIX}"
SERVICE_DN = f"cn=portal,{SUFFIX}"
ROOT_DN = f"cn=admin,{SUFFIX}"
DEPARTMENTS = ("Sales", "Engineering", "Finance", "Legal", "Support", "Logistics", "Marketing", "Research")
SIZE_LIMIT = 500
ENABLED, DISABLED = 512, 514  # Active Directory's NORMAL_ACCOUNT, and the same with ACCOUNTDISABLE (bit 2)

# userAccountControl as Active Directory names it, on an auxiliary class so inetOrgPerson stays structural.
_SCHEMA = """dn: cn=portaltest,cn=schema,cn=config
objectClass: olcSchemaConfig
cn: portaltest
olcAttributeTypes: ( 1.3.6.1.4.1.55555.1.1 NAME 'userAccountControl'
  EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
olcObjectClasses: ( 1.3.6.1.4.1.55555.2.1 NAME 'portalAccount' SUP top AUXILIARY
  MAY userAccountControl )
"""


def missing_reason() -> str | None:
    """Why the LDAP tests cannot run here, or None."""
    if not (os.path.exists(SLAPD) and os.path.exists(SLAPADD)):
        return f"OpenLDAP is not installed ({SLAPD}); install the Debian packages slapd and ldap-utils"
    return None


def person_uid(number: int) -> str:
    return f"person{number:04d}"


def person_dn(number: int) -> str:
    return f"uid={person_uid(number)},{PEOPLE}"


def person_email(number: int) -> str:
    return f"{person_uid(number)}@example.com"


def department_of(number: int) -> str:
    return DEPARTMENTS[number % len(DEPARTMENTS)]


def person_ldif(number: int, *, department: str | None = None, mail: str | None = None,
                control: int = ENABLED) -> str:
    """One person as the fixture loads it (every tenth has the first person of the department as manager)."""
    lines = [f"dn: {person_dn(number)}", "objectClass: inetOrgPerson", "objectClass: portalAccount",
             f"uid: {person_uid(number)}", f"cn: Person {number:04d}", f"sn: {number:04d}",
             f"title: Specialist {number % 5}", f"departmentNumber: {department or department_of(number)}",
             f"userAccountControl: {control}"]
    if mail != "":
        lines.append(f"mail: {mail or person_email(number)}")
    if number >= len(DEPARTMENTS):
        lines.append(f"manager: {person_dn(number % len(DEPARTMENTS))}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class DirectoryAccess:
    """What the portal needs to reach this directory (named as portal.directory.DirectorySettings names it)."""

    url: str
    ca_file: str
    bind_dn: str
    bind_password: str
    base_dn: str
    admin_group_dn: str


class OpenLdap:
    """slapd on a free 127.0.0.1 port; ``people`` (default 1,000) loaded with slapadd before it starts."""

    def __init__(self, root: Path, certificate: ServerCertificate, *, people: int = 1000,
                 admins: tuple[int, ...] = (1, 2, 3)):
        self.root = root
        self.certificate = certificate
        self.people = people
        self.admins = admins
        self.port = 0
        self.root_password = secrets.token_urlsafe(12)
        self.service_password = secrets.token_urlsafe(12)
        self.pidfile = root / "slapd.pid"

    @property
    def url(self) -> str:
        return f"ldap://{HOST}:{self.port}"

    def access(self, **overrides) -> DirectoryAccess:
        """Settings for the service account, over StartTLS with the test CA (fields overridable)."""
        fields = dict(url=self.url, ca_file=self.certificate.ca_file, bind_dn=SERVICE_DN,
                      bind_password=self.service_password, base_dn=PEOPLE, admin_group_dn=ADMINS)
        fields.update(overrides)
        return DirectoryAccess(**fields)

    def _config(self) -> str:
        schema = Path("/etc/ldap/schema")
        return f"""dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: {self.pidfile}
olcTLSCACertificateFile: {self.certificate.ca_file}
olcTLSCertificateFile: {self.certificate.cert_file}
olcTLSCertificateKeyFile: {self.certificate.key_file}
olcLogLevel: none

dn: cn=module{{0}},cn=config
objectClass: olcModuleList
cn: module{{0}}
olcModulePath: /usr/lib/ldap
olcModuleLoad: back_mdb

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

include: file://{schema / 'core.ldif'}

include: file://{schema / 'cosine.ldif'}

include: file://{schema / 'inetorgperson.ldif'}

{_SCHEMA}
dn: olcDatabase={{-1}}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {{-1}}frontend
olcSizeLimit: size.soft={SIZE_LIMIT} size.hard={SIZE_LIMIT} size.prtotal=unlimited

dn: olcDatabase={{0}}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {{0}}config
olcAccess: to * by * none

dn: olcDatabase={{1}}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {{1}}mdb
olcDbDirectory: {self.root / 'data'}
olcDbMaxSize: 268435456
olcSuffix: {SUFFIX}
olcRootDN: {ROOT_DN}
olcRootPW: {self.root_password}
olcSecurity: tls=1
olcAccess: to attrs=userPassword by anonymous auth by * none
olcAccess: to * by dn.exact="{SERVICE_DN}" read by * none
"""

    def _data(self) -> str:
        entries = [f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n",
                   f"dn: {SERVICE_DN}\nobjectClass: person\nobjectClass: simpleSecurityObject\ncn: portal\n"
                   f"sn: portal\nuserPassword: {self.service_password}\n",
                   f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n",
                   f"dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups\n"]
        entries += [person_ldif(number) for number in range(1, self.people + 1)]
        members = "".join(f"member: {person_dn(number)}\n" for number in self.admins)
        entries.append(f"dn: {ADMINS}\nobjectClass: groupOfNames\ncn: portal-admins\n{members}")
        return "\n".join(entries)

    def start(self) -> "OpenLdap":
        """Write the configuration and data, load them with slapadd, start slapd and wait until it answers."""
        config_dir, data_dir = self.root / "slapd.d", self.root / "data"
        for folder in (config_dir, data_dir):
            folder.mkdir(parents=True)
        (self.root / "config.ldif").write_text(self._config())
        (self.root / "data.ldif").write_text(self._data())
        subprocess.run([SLAPADD, "-n", "0", "-F", str(config_dir), "-l", str(self.root / "config.ldif")],
                       check=True, capture_output=True, timeout=30)
        subprocess.run([SLAPADD, "-q", "-n", "1", "-F", str(config_dir), "-l", str(self.root / "data.ldif")],
                       check=True, capture_output=True, timeout=60)
        for attempt in range(5):
            self.port = free_port()
            subprocess.run([SLAPD, "-h", f"ldap://{HOST}:{self.port}/", "-F", str(config_dir)],
                           check=True, capture_output=True, timeout=30)
            if self._answers(deadline=time.monotonic() + 10):
                return self
            self.stop()  # another process took the port between free_port() and bind
        raise RuntimeError(f"slapd did not start; see {self.root}")

    def _answers(self, deadline: float) -> bool:
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((HOST, self.port), timeout=1):
                    return True
            except OSError:
                time.sleep(0.02)
        return False

    def stop(self) -> None:
        terminate_by_pid_file(self.pidfile)
        self.pidfile.unlink(missing_ok=True)

    def admin_connection(self) -> ldap3.Connection:
        """A connection bound as the root DN over StartTLS (limits do not apply to it)."""
        tls = ldap3.Tls(ca_certs_file=self.certificate.ca_file)
        connection = ldap3.Connection(ldap3.Server(HOST, port=self.port, tls=tls), ROOT_DN, self.root_password,
                                      raise_exceptions=True)
        connection.open()
        connection.start_tls()
        connection.bind()
        return connection

    def modify(self, number: int, **attributes: str | int) -> None:
        """Replace attributes of one person (``departmentNumber="Legal"``, ``userAccountControl=DISABLED``)."""
        with self.admin_connection() as connection:
            connection.modify(person_dn(number), {name: [(MODIFY_REPLACE, [value])]
                                                  for name, value in attributes.items()})

    def disable(self, number: int) -> None:
        """Disable a person's account the way Active Directory does."""
        self.modify(number, userAccountControl=DISABLED)

    def enable(self, number: int) -> None:
        self.modify(number, userAccountControl=ENABLED)

    def remove(self, number: int) -> None:
        """Delete a person from the directory."""
        with self.admin_connection() as connection:
            connection.delete(person_dn(number))

    def rename(self, number: int, new_uid: str) -> None:
        """Give a person a new DN (as when an account is renamed or moved to another OU)."""
        with self.admin_connection() as connection:
            connection.modify_dn(person_dn(number), f"uid={new_uid}")

    def leave_admins(self, number: int) -> None:
        """Take a person out of the admins group."""
        with self.admin_connection() as connection:
            connection.modify(ADMINS, {"member": [(MODIFY_DELETE, [person_dn(number)])]})

    def add(self, number: int, **fields) -> None:
        """Add a person (``department``, ``mail`` as person_ldif takes them; ``mail=""`` leaves it out)."""
        entry = {}
        for line in person_ldif(number, **fields).splitlines()[1:]:
            name, _, value = line.partition(": ")
            entry.setdefault(name, []).append(value)
        classes = entry.pop("objectClass")
        with self.admin_connection() as connection:
            connection.add(person_dn(number), classes, entry)
