"""Every ORM module of the database, imported so their tables register on the shared metadata.

Alembic's env.py imports this module; a new domain with tables adds its `models` import here.
"""

import omniroute.router.customers.models  # noqa: F401  (customer_merges, erasures)
import omniroute.router.models  # noqa: F401
import omniroute.router.notifications.models  # noqa: F401  (notifications, feedback)
import omniroute.router.webhooks.models  # noqa: F401
import omniroute.shared.auth  # noqa: F401  (api_keys)
