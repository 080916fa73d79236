"""Every table of the portal, importable from one place."""
from portal.models.base import BaseModel, utcnow
from portal.models.people import Employee, Project, normalize_email

__all__ = ["BaseModel", "Employee", "Project", "normalize_email", "utcnow"]
