"""The console's plumbing: templates, the signed-in viewer of a request, form reading, and one way to
turn the services' errors into pages.

Routes (keeneye.console.pages) are ``async`` so that they can read forms; anything that touches the
database or the models runs in Starlette's thread pool (:func:`blocking`), as the native API's plain
routes do.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from keeneye.api.errors import STATUS
from keeneye.auth.errors import AuthError, Throttled
from keeneye.aws.errors import AwsError
from keeneye.console.session import (
    CSRF_FIELD,
    PATH,
    ForgedRequest,
    NotSignedIn,
    Viewer,
    check_csrf,
    viewer_of,
)
from keeneye.core.errors import KeeneyeError, LimitExceeded

T = TypeVar("T")

HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))
STATIC_DIR = HERE / "static"

NAV: tuple[tuple[str, str], ...] = (
    ("collections", "People"),
    ("events", "Events"),
    ("review", "Review"),
    ("processors", "Cameras"),
    ("video", "Video"),
    ("audit", "Audit log"),
    ("redact", "Redact"),
    ("keys", "Keys"),
)


async def blocking(fn: Callable[[], T]) -> T:
    """Run ``fn`` (database, models) in the thread pool."""
    return await run_in_threadpool(fn)


def render(
    request: Request,
    template: str,
    viewer: Viewer | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A page: the template with the viewer (for the navigation, CSRF value and rights)."""
    context.setdefault("error", None)
    context.setdefault("notice", None)
    return TEMPLATES.TemplateResponse(
        request,
        template,
        {"viewer": viewer, "nav": NAV, "csrf_field": CSRF_FIELD, "base": PATH, **context},
        status_code=status_code,
        headers=_NO_STORE,
    )


# Console pages hold biometric metadata: never cached, never framed by another site.
_NO_STORE = {"Cache-Control": "no-store"}


def see_other(path: str) -> RedirectResponse:
    """The redirect after a change (POST -> 303 -> GET), to a console path."""
    return RedirectResponse(f"{PATH}{path}", status_code=303)


def status_of(exc: KeeneyeError) -> int:
    return STATUS.get(exc.code, 400)


async def collection_names(request: Request) -> list[str]:
    """The ids of the server's collections (home region), for the pages' collection pickers."""
    collections = request.app.state.api.services.collections
    if collections is None:
        return []
    page = await blocking(lambda: collections.list_collections(1000))
    return [c.collection_id for c in page.items]


async def signed_in(request: Request) -> Viewer:
    return await blocking(lambda: viewer_of(request))


async def form_of(request: Request, viewer: Viewer, *, max_files: int = 0, max_bytes: int = 0) -> FormData:
    """The POSTed form, after its CSRF value and Origin have been checked (ForgedRequest otherwise).
    Multipart uploads are bounded: at most ``max_files`` files and ``max_bytes`` in all (the server's
    request body limit applies before this: keeneye.aws.body_limits)."""
    form = await request.form(max_files=max(max_files, 1), max_fields=50)
    check_csrf(request, viewer, form)
    if max_files:
        total = sum(f.size or 0 for f in files_of(form))
        if max_bytes and total > max_bytes:
            raise LimitExceeded(f"the files sent add up to {total} bytes; at most {max_bytes} are accepted")
    return form


def files_of(form: FormData, name: str | None = None) -> list[UploadFile]:
    return [
        v
        for k, v in form.multi_items()
        if isinstance(v, UploadFile) and (name is None or k == name) and v.filename
    ]


def text_of(form: FormData, name: str, default: str = "") -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else default


Handler = Callable[[Request, Viewer], Awaitable[Response]]


async def guarded(request: Request, handler: Handler, *, page: str = "error.html") -> Response:
    """Run a console handler for the signed-in viewer: to sign-in when there is no session, a 403 page
    for a forged change, the error page (with the status the API would answer) for a service error."""
    try:
        viewer = await signed_in(request)
    except NotSignedIn:
        if request.method == "GET":
            return see_other("/sign-in")
        return render(request, "sign_in.html", None, 401, error="Your session has ended: sign in again.")
    except Throttled as exc:
        return render(request, page, None, 429, error=exc.message)
    try:
        return await handler(request, viewer)
    except ForgedRequest as exc:
        return render(request, "error.html", viewer, 403, error=str(exc))
    except (AuthError, Throttled) as exc:
        return render(
            request, "error.html", viewer, 429 if isinstance(exc, Throttled) else 401, error=exc.message
        )
    except KeeneyeError as exc:
        return render(request, "error.html", viewer, status_of(exc), error=exc.message)
    except AwsError as exc:  # the bucket reader (keeneye.aws.images) speaks the AWS layer's errors
        return render(request, "error.html", viewer, exc.status, error=exc.message)
    finally:
        await request.close()  # the form's uploaded files (spooled to disk past 1 MB)
