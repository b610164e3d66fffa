"""argon2 runs off the event loop, and boundedly: each hash or check holds a core and ~19 MiB for tens of
milliseconds, so a burst of logins (from many addresses, each within its own budget) must neither starve the event
loop nor queue without end. Past ``password_jobs_max`` jobs in a process, a login answers 503 with Retry-After."""

from __future__ import annotations

from gateway.errors import InfrastructureError
from gateway.thread_work import ThreadWork

password_jobs_running_max = 2  # the machine's cores: more at once only share them
password_jobs_max = 256  # running and waiting, per process


class PasswordChecksBusy(InfrastructureError):
    code = "password_checks_busy"
    default_message = "too many password checks are waiting; retry shortly"


PASSWORDS = ThreadWork(running_max=password_jobs_running_max, jobs_max=password_jobs_max, busy=PasswordChecksBusy)
