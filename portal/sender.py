"""Which address a letter leaves from: the rule, over plain rows, with its explanation in Russian and English.

1. Employee level beats company level: among the employee's own active, tested mailboxes that
   serve the project, the one marked Default for it, else one tied to the project, else one
   serving every project.
2. Only when no personal mailbox serves the project: the company mailboxes the employee may
   use, in the same order.
3. Otherwise nobody can send, and the answer says what to configure. There is no fall-back.

Ties are broken oldest first and reported as a conflict. `decide` is the pure rule;
`resolve_sender` (two queries) and `sender_table` (a constant number of queries for a whole
grid) load rows and call it. No Flask import: the letters queue and the API call this directly.
"""
from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from portal.words import N_, Nn_, translate

# Rank of a mailbox within its level for one project: lower wins.
DEFAULT, TIED, EVERY = 0, 1, 2


@dataclass(frozen=True)
class EmployeeRow:
    """The employee as the rule sees it."""

    id: int
    name: str = ""
    department: str = ""


@dataclass(frozen=True)
class ProjectRow:
    """A project as the rule sees it."""

    id: int
    name: str = ""


@dataclass(frozen=True)
class Candidate:
    """A mailbox as the rule sees it; ``row`` is the database row when there is one."""

    id: int
    address: str
    scope: str  # "employee" | "company"
    owner_id: int | None = None
    display_name: str = ""
    projects: frozenset = frozenset()  # ids; empty = every project
    is_default: bool = False
    active: bool = True
    tested: bool = True
    access_everyone: bool = True
    access_employees: frozenset = frozenset()
    access_departments: frozenset = frozenset()
    created_at: datetime.datetime = datetime.datetime(2000, 1, 1)
    row: Any = field(default=None, compare=False, hash=False, repr=False)

    @property
    def age_key(self):
        """Oldest first, then lowest id: the deterministic tie-break."""
        return (self.created_at, self.id)

    def serves(self, project_id):
        """Whether the mailbox is used for this project (None: a letter outside any project)."""
        return not self.projects or (project_id is not None and project_id in self.projects)

    def rank(self, project_id):
        """DEFAULT, TIED or EVERY for a project this mailbox serves; None if it does not serve it."""
        if not self.serves(project_id):
            return None
        if self.is_default:
            return DEFAULT
        return TIED if self.projects else EVERY

    def open_to(self, employee):
        """Whether this employee may use the mailbox at all (their own, or a company one shared with them)."""
        if self.scope == "employee":
            return self.owner_id == employee.id
        if self.access_everyone:
            return True
        return employee.id in self.access_employees or (
            bool(employee.department) and employee.department.lower() in self.access_departments
        )

    def usable(self):
        """Active and passed its account test: the only state a letter may leave from."""
        return self.active and self.tested

    @property
    def mailbox(self):
        """The database row, or this candidate when the rule runs over plain data."""
        return self.row if self.row is not None else self


@dataclass
class SenderDecision:
    """The rule's answer for one employee and one project."""

    employee: EmployeeRow
    project: ProjectRow | None
    chosen: Candidate | None
    level: str | None  # "employee" | "company" | None
    rank: int | None
    tied: list  # other Candidates that matched exactly as well as the chosen one
    own: list = field(default_factory=list, repr=False)  # (rank, Candidate): the employee's usable ones, best first
    shared: list = field(default_factory=list, repr=False)  # (rank, Candidate): usable company ones, before access
    personal: Sequence[Candidate] = ()
    company: Sequence[Candidate] = ()

    @property
    def options(self):
        """Candidates the employee may pick, the chosen one first (computed when asked: the grid never needs it)."""
        return [c for _, c in self.own] + [c for _, c in self.shared if c.open_to(self.employee)]

    @property
    def mailbox(self):
        """The mailbox the letter leaves from (a Mailbox row when loaded from the database), or None."""
        return self.chosen.mailbox if self.chosen else None

    @property
    def choices(self):
        """Every mailbox the employee may pick for a letter in this project, the resolved one first."""
        return [candidate.mailbox for candidate in self.options]

    @property
    def conflict(self):
        """True when two or more mailboxes tie for first place (the oldest was taken)."""
        return bool(self.tied)

    @property
    def nobody(self):
        return self.chosen is None

    @property
    def problem(self):
        """"nobody", "conflict" or None: what the Who-sends-from-what grid marks."""
        if self.chosen is None:
            return "nobody"
        return "conflict" if self.tied else None

    def reason(self):
        """A stable code for why: e.g. "employee.default", "company.every", "nobody"."""
        if self.chosen is None:
            return "nobody"
        return f"{self.level}.{('default', 'tied', 'every')[self.rank]}"

    def summary(self, lang="en"):
        """One short line for a grid cell."""
        return _text(lang, "summary." + self.reason())

    def explanation(self, lang="en"):
        """The full explanation, in "ru" or "en": why this mailbox, or what to configure."""
        return explain(self, lang)


def decide(employee, project, personal: Iterable[Candidate], company: Iterable[Candidate]) -> SenderDecision:
    """The rule itself, over plain rows: ``personal`` are the employee's own mailboxes, ``company`` the shared ones.

    Rows that do not serve the project, are paused, untested, someone else's, or closed to this
    employee may be passed in too; they are never chosen (the explanation counts them).
    """
    project_id = project.id if project is not None else None
    personal = sorted((c for c in personal if c.scope == "employee" and c.owner_id == employee.id), key=_age)
    company = sorted((c for c in company if c.scope == "company"), key=_age)
    own = _serving((c for c in personal if c.usable()), project_id)
    shared = _serving((c for c in company if c.usable()), project_id)
    return _decision(employee, project, own, shared, personal, company)


def _decision(employee, project, own, shared, personal, company):
    """Pick from ranked lists: the best own mailbox, else the best company one this employee may use."""
    if own:
        rank, chosen = own[0]
        tied = [c for r, c in own[1:] if r == rank]
        return SenderDecision(employee, project, chosen, "employee", rank, tied, own, shared, personal, company)
    for index, (rank, chosen) in enumerate(shared):
        if chosen.open_to(employee):
            tied = []
            for other_rank, other in shared[index + 1:]:
                if other_rank != rank:
                    break  # sorted by rank: nothing further can tie
                if other.open_to(employee):
                    tied.append(other)
            return SenderDecision(employee, project, chosen, "company", rank, tied, own, shared, personal, company)
    return SenderDecision(employee, project, None, None, None, [], own, shared, personal, company)


def _age(candidate):
    return candidate.age_key


def _serving(candidates, project_id):
    """(rank, candidate) for those serving the project, best first, oldest first within a rank."""
    ranked = [(c.rank(project_id), c) for c in candidates]
    ranked = [(rank, c) for rank, c in ranked if rank is not None]
    ranked.sort(key=lambda pair: (pair[0], pair[1].age_key))
    return ranked


def may_use(employee, mailbox, project) -> bool:
    """Whether this employee may send a letter in this project from this mailbox (checked on every pick).

    ``employee`` is an Employee or EmployeeRow, ``mailbox`` a Mailbox or Candidate, ``project``
    a Project, ProjectRow or None. Reads the mailbox's projects and access list (one query each
    for a database row).
    """
    candidate = mailbox if isinstance(mailbox, Candidate) else candidate_from_mailbox(mailbox)
    project_id = project.id if project is not None else None
    who = employee if isinstance(employee, EmployeeRow) else employee_row(employee)
    return candidate.usable() and candidate.open_to(who) and candidate.serves(project_id)


# ---------------------------------------------------------------- loading rows from the database

def employee_row(employee):
    return EmployeeRow(id=employee.id, name=employee.name, department=employee.department or "")


def project_row(project):
    return ProjectRow(id=project.id, name=project.name) if project is not None else None


def candidate_from_mailbox(mailbox, projects=None, access=None):
    """A Candidate for a Mailbox row; projects and access rows are read unless given."""
    if projects is None:
        projects = [link.project_id for link in mailbox.project_links]
    if access is None:
        access = [(rule.employee_id, rule.department) for rule in mailbox.access_rules]
    return Candidate(
        id=mailbox.id,
        address=mailbox.address,
        scope=mailbox.scope,
        owner_id=mailbox.owner_id,
        display_name=mailbox.display_name,
        projects=frozenset(projects),
        is_default=mailbox.is_default,
        active=mailbox.active,
        tested=mailbox.tested,
        access_everyone=mailbox.access_everyone,
        access_employees=frozenset(e for e, _ in access if e is not None),
        access_departments=frozenset(d.lower() for _, d in access if d),
        created_at=mailbox.created_at,
        row=mailbox,
    )


def _load_candidates(where):
    """Candidates for the mailboxes matching ``where``, in two queries: the rows, then their links."""
    from portal.models import Mailbox

    rows = list(Mailbox.select().where(where))
    if not rows:
        return []
    projects, access = _links(Mailbox.select(Mailbox.id).where(where))
    return [candidate_from_mailbox(row, projects.get(row.id, ()), access.get(row.id, ())) for row in rows]


def load_candidate(mailbox):
    """The Candidate for one mailbox row, its projects and access list read in one query: what the New letter
    check and the queue's send-time check hand to ``may_use``."""
    projects, access = _links([mailbox.id])
    return candidate_from_mailbox(mailbox, projects.get(mailbox.id, ()), access.get(mailbox.id, ()))


def _links(ids):
    """({mailbox id: [project id]}, {mailbox id: [(employee id, department)]}) for these mailboxes, in one query."""
    from peewee import Value

    from portal.models import MailboxAccess, MailboxProject

    # One query for both link tables: ("p", mailbox, project, NULL) and ("a", mailbox, employee, department).
    links = MailboxProject.select(
        Value("p").alias("kind"),
        MailboxProject.mailbox.alias("mailbox_id"),
        MailboxProject.project.alias("ref"),
        Value("", converter=False).alias("department"),
    ).where(MailboxProject.mailbox.in_(ids)) + MailboxAccess.select(
        Value("a").alias("kind"),
        MailboxAccess.mailbox.alias("mailbox_id"),
        MailboxAccess.employee.alias("ref"),
        MailboxAccess.department.alias("department"),
    ).where(MailboxAccess.mailbox.in_(ids))
    projects, access = {}, {}
    for kind, mailbox_id, ref, department in links.tuples():
        if kind == "p":
            projects.setdefault(mailbox_id, []).append(ref)
        else:
            access.setdefault(mailbox_id, []).append((ref, department))
    return projects, access


def _serves_in_sql(project):
    """SQL for "the mailbox serves this project": it has no project links, or one to this project."""
    from peewee import fn

    from portal.models import Mailbox, MailboxProject

    links = MailboxProject.select(MailboxProject.id).where(MailboxProject.mailbox == Mailbox.id)
    every = ~fn.EXISTS(links)
    if project is None:
        return every
    return every | fn.EXISTS(links.where(MailboxProject.project == project.id))


def resolve_sender(employee, project) -> SenderDecision:
    """The mailbox a letter from this employee in this project leaves from, with every choice and why (2 queries).

    All of the employee's own mailboxes are read (the explanation names those serving other projects),
    but only the company mailboxes serving this project: the rule and its explanation look at no others.
    """
    from portal.models import Mailbox

    candidates = _load_candidates(
        ((Mailbox.scope == "employee") & (Mailbox.owner == employee.id))
        | ((Mailbox.scope == "company") & _serves_in_sql(project))
    )
    personal = [c for c in candidates if c.scope == "employee"]
    company = [c for c in candidates if c.scope == "company"]
    return decide(employee_row(employee), project_row(project), personal, company)


@dataclass
class SenderTable:
    """The Who-sends-from-what grid: one decision per employee and project."""

    employees: list
    projects: list
    cells: dict  # (employee_id, project_id) -> SenderDecision

    def cell(self, employee, project):
        return self.cells[(employee.id, project.id)]

    def rows(self):
        """(employee, [decision per project]) in order."""
        return [(e, [self.cells[(e.id, p.id)] for p in self.projects]) for e in self.employees]


def sender_table(employees, projects) -> SenderTable:
    """Decide every employee × project cell with a constant number of queries (two), whatever the size."""
    from portal.models import Mailbox

    employees, projects = list(employees), list(projects)
    ids = [e.id for e in employees]
    candidates = _load_candidates(Mailbox.scope == "company") if employees else []
    if ids:
        # Personal mailboxes of the employees asked for; a single IN list keeps this one query.
        candidates += _load_candidates((Mailbox.scope == "employee") & (Mailbox.owner.in_(ids)))
    return table_from_candidates(employees, projects, candidates)


def table_from_candidates(employees, projects, candidates) -> SenderTable:
    """The grid over plain rows (the pure part of sender_table): each project's company ranking is made once."""
    personal_of = {}
    company = []
    for c in sorted(candidates, key=_age):
        if c.scope == "company":
            company.append(c)
        else:
            personal_of.setdefault(c.owner_id, []).append(c)
    serving = {}
    shared = {}
    for p in projects:
        serving[p.id] = [c for c in company if c.serves(p.id)]
        shared[p.id] = _serving((c for c in serving[p.id] if c.usable()), p.id)
    rows = [(p, project_row(p) if not isinstance(p, ProjectRow) else p) for p in projects]
    cells = {}
    for employee in employees:
        who = employee_row(employee) if not isinstance(employee, EmployeeRow) else employee
        personal = personal_of.get(employee.id, [])
        usable = [c for c in personal if c.usable()]
        for project, where in rows:
            own = _serving(usable, project.id) if usable else []
            cells[(employee.id, project.id)] = _decision(who, where, own, shared[project.id], personal,
                                                         serving[project.id])
    return SenderTable(employees, projects, cells)


# ---------------------------------------------------------------- explanations

# The rule's words, in English; Babel's catalogues hold the other languages.
_TEXTS = {
    "summary.employee.default": N_("own address, Default"),
    "summary.employee.tied": N_("own address for this project"),
    "summary.employee.every": N_("own address for every project"),
    "summary.company.default": N_("company address, Default"),
    "summary.company.tied": N_("company address for this project"),
    "summary.company.every": N_("company address for every project"),
    "summary.nobody": N_("nobody can send"),
    "project": N_("project “{name}”"),
    "no_project": N_("letters outside any project"),
    "chosen.employee.default": N_("{address} is {employee}’s own address and is marked Default for {project}."),
    "chosen.employee.tied": N_(
        "{address} is {employee}’s own address tied to {project}; none of their addresses is marked Default "
        "for it."
    ),
    "chosen.employee.every": N_(
        "{address} is {employee}’s own address serving every project; none of their addresses is Default for "
        "{project} or tied to it."
    ),
    "chosen.company.default": N_(
        "{employee} has no own address for {project}, so the company address {address} is used: it is marked "
        "Default for it and {employee} may use it ({access})."
    ),
    "chosen.company.tied": N_(
        "{employee} has no own address for {project}, so the company address {address} tied to it is used "
        "({access}); no company address is marked Default for it."
    ),
    "chosen.company.every": N_(
        "{employee} has no own address for {project}, so the company address {address} serving every project "
        "is used ({access})."
    ),
    "rule": N_("Employee-level addresses always beat company ones."),
    "access.everyone": N_("open to everyone"),
    "access.employee": N_("shared with them by name"),
    "access.department": N_("shared with the {department} department"),
    # A list of addresses agrees as one or as several, whatever a language's numerals do: two texts, not Nn_.
    "conflict.one": N_(
        "Conflict: {others} matches just as well; the oldest address was taken. Mark one of them as Default "
        "for {project} to settle it."
    ),
    "conflict.several": N_(
        "Conflict: {others} match just as well; the oldest address was taken. Mark one of them as Default "
        "for {project} to settle it."
    ),
    "also": N_("For a single letter {employee} may also pick: {others}."),
    "nobody": N_(
        "Nobody can send letters from {employee} in {project}: no own address and no company address they may "
        "use serves it. Nothing is sent from a system address instead."
    ),
    # A letter outside any project reads badly in the sentences above ("in letters outside any project").
    "nobody.no_project": N_(
        "Nobody can send {employee}’s letters outside a project: no own address and no company address they may "
        "use serves letters without a project. Nothing is sent from a system address instead."
    ),
    "fix.employee.no_project": N_(
        "The employee can add their own address under My addresses (or an admin can add it on the employee "
        "card) with no project chosen, so that it serves every letter, and run Test account."
    ),
    "fix.admin.no_project": N_(
        "An admin can add a company address with no project chosen under Outgoing messages, or share an "
        "existing one with {employee} or their department."
    ),
    "found.paused": Nn_("{count} suitable address is paused: {addresses}.",
                        "{count} suitable addresses are paused: {addresses}."),
    "found.untested": Nn_("{count} suitable address has not passed the account test: {addresses}.",
                          "{count} suitable addresses have not passed the account test: {addresses}."),
    "found.closed": Nn_("{count} company address serves it but is not shared with {employee}: {addresses}.",
                        "{count} company addresses serve it but are not shared with {employee}: {addresses}."),
    "found.elsewhere": Nn_("{employee} has {count} own address, serving other projects only: {addresses}.",
                           "{employee} has {count} own addresses, serving other projects only: {addresses}."),
    "fix.employee": N_(
        "The employee can add their own address under My addresses (or an admin can add it on the employee "
        "card), choosing {project} or every project, and run Test account."
    ),
    "fix.admin": N_(
        "An admin can add a company address for {project} under Outgoing messages, or share an existing one "
        "with {employee} or their department."
    ),
    "fix.resume": N_("Resuming a paused address, or testing an untested one again, also helps."),
}


def _text(lang, key, count=None, **values):
    """The rule's words for `key` in `lang`; a text with a number takes its form from `count`."""
    return translate(_TEXTS[key], lang, count).format(count=count, **values)


def _project_words(project, lang):
    if project is None:
        return _text(lang, "no_project")
    return _text(lang, "project", name=project.name)


def _addresses(candidates):
    return ", ".join(c.address for c in candidates)


def _access_words(candidate, employee, lang):
    if candidate.access_everyone:
        return _text(lang, "access.everyone")
    if employee.id in candidate.access_employees:
        return _text(lang, "access.employee")
    return _text(lang, "access.department", department=employee.department)


def explain(decision: SenderDecision, lang="en") -> str:
    """Why the decision is what it is, or what an admin or the employee should configure."""
    lang = lang if lang in ("en", "ru") else "en"
    employee = decision.employee.name or f"#{decision.employee.id}"
    project = _project_words(decision.project, lang)
    parts = []
    if decision.chosen is not None:
        chosen = decision.chosen
        key = f"chosen.{decision.level}.{('default', 'tied', 'every')[decision.rank]}"
        parts.append(_text(lang, key, address=chosen.address, employee=employee, project=project,
                           access=_access_words(chosen, decision.employee, lang)))
        if decision.level == "company" or len(decision.options) > 1:
            parts.append(_text(lang, "rule"))
        if decision.tied:
            parts.append(_text(lang, "conflict.one" if len(decision.tied) == 1 else "conflict.several",
                               others=_addresses(decision.tied), project=project))
        others = [c for c in decision.options[1:] if c not in decision.tied]
        if others:
            parts.append(_text(lang, "also", employee=employee, others=_addresses(others)))
        return " ".join(parts)

    project_id = decision.project.id if decision.project is not None else None
    person = decision.employee
    relevant = [c for c in decision.personal if c.serves(project_id)] + [
        c for c in decision.company if c.serves(project_id) and c.open_to(person)
    ]
    outside = "" if decision.project is not None else ".no_project"
    parts.append(_text(lang, "nobody" + outside, employee=employee, project=project))
    paused = [c for c in relevant if not c.active]
    untested = [c for c in relevant if c.active and not c.tested]
    closed = [c for c in decision.company if c.serves(project_id) and not c.open_to(person)]
    elsewhere = [c for c in decision.personal if not c.serves(project_id)]
    if paused:
        parts.append(_text(lang, "found.paused", len(paused), addresses=_addresses(paused)))
    if untested:
        parts.append(_text(lang, "found.untested", len(untested), addresses=_addresses(untested)))
    if closed:
        parts.append(_text(lang, "found.closed", len(closed), employee=employee, addresses=_addresses(closed)))
    if elsewhere:
        parts.append(_text(lang, "found.elsewhere", len(elsewhere), employee=employee,
                           addresses=_addresses(elsewhere)))
    parts.append(_text(lang, "fix.employee" + outside, project=project))
    parts.append(_text(lang, "fix.admin" + outside, project=project, employee=employee))
    if paused or untested:
        parts.append(_text(lang, "fix.resume"))
    return " ".join(parts)
