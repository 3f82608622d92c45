"""`type = "integration"`: can we reach a vendor's API, are our credentials accepted, and
what does the vendor's own status page say?"""

from checks.integration.check import IntegrationCheck
from checks.integration.config import IntegrationCheckConfig

__all__ = ["IntegrationCheck", "IntegrationCheckConfig"]
