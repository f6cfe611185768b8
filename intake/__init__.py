"""Mail in: SMTP, MTA pipe, file import (and IMAP), all through :func:`intake.store.store_message`."""
