"""Reading and writing a big seating layout runs off the event loop, and boundedly.

A 100,000-seat layout takes seconds of pure Python to read (engine/catalog/layouts.py, layout_csv.py) or to
render, which on the event loop would stall every other request of the process. In a worker thread the loop
keeps serving (the interpreter switches threads every few milliseconds); at most ``layout_jobs_running_max`` run
at once per process, and past ``layout_jobs_max`` running and waiting a request answers 503 with Retry-After.
"""

from __future__ import annotations

from gateway.errors import InfrastructureError
from gateway.thread_work import ThreadWork

layout_jobs_running_max = 1
layout_jobs_max = 8  # running and waiting, per process


class LayoutWorkBusy(InfrastructureError):
    code = "layout_work_busy"
    default_message = "too many layouts are being read or written; retry shortly"


LAYOUT_WORK = ThreadWork(running_max=layout_jobs_running_max, jobs_max=layout_jobs_max, busy=LayoutWorkBusy)
