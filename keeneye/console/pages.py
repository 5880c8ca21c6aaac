"""The console's pages: sign-in, people and collections, the review queue, cameras with their live view,
video jobs, the audit log, redaction and keys. Each acts through the services the APIs use, under the
signed-in key's policy (the same action names as the APIs: rekognition:IndexFaces, keeneye:ReadAudit...),
and audits its changes under that key (keeneye.console.session)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData

from keeneye.api.deps import analysing, client_address
from keeneye.auth.errors import AuthError, Throttled
from keeneye.console import session as sessions
from keeneye.console.web import (
    blocking,
    files_of,
    form_of,
    guarded,
    render,
    see_other,
    text_of,
)
from keeneye.core import regions
from keeneye.core.errors import BackendUnavailable, InvalidParameter, KeeneyeError, NotFound
from keeneye.service.faces.collections import FaceCollections
from keeneye.service.faces.enrol import NothingEnrolled, Photo, enrol

router = APIRouter(prefix=sessions.PATH, include_in_schema=False)

MAX_PHOTOS = 20  # as POST /v1/collections/{id}/users/{user}/photos
PEOPLE_PAGE = 100
READ_AUDIT = "keeneye:ReadAudit"
LIST_IDENTIFICATIONS = "keeneye:ListIdentifications"
REVIEW_IDENTIFICATION = "keeneye:ReviewIdentification"
SET_REVIEW_REQUIRED = "keeneye:SetCollectionReviewRequired"
DECISIONS = {"confirm": "CONFIRMED", "reject": "REJECTED", "unsure": "UNSURE"}
REVIEW_FILTERS = ("PENDING", "CONFIRMED", "REJECTED", "UNSURE", "ALL")


def _collections(request: Request) -> FaceCollections:
    found = request.app.state.api.services.collections
    if found is None:
        raise BackendUnavailable("collections are not available on this server (it has no database)")
    collections: FaceCollections = found
    return collections


def _key(collection_id: str) -> str:
    if regions.SEPARATOR in collection_id:
        return collection_id
    return regions.scoped_key(regions.HOME_REGION, collection_id)


# -- sign-in ------------------------------------------------------------------------------------------


@router.get("", response_class=HTMLResponse)
@router.get("/", response_class=HTMLResponse)
async def home(request: Request) -> Response:
    async def page(_: Request, __: sessions.Viewer) -> Response:
        return see_other("/collections")

    return await guarded(request, page)


def _sign_in_page(request: Request, status: int = 200, error: str | None = None) -> Response:
    nonce = sessions.new_sign_in_nonce()
    response = render(request, "sign_in.html", None, status, error=error, nonce=nonce)
    response.set_cookie(
        sessions.SIGN_IN_COOKIE,
        nonce,
        max_age=900,
        path=sessions.PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.get("/sign-in", response_class=HTMLResponse)
async def sign_in_page(request: Request) -> Response:
    return _sign_in_page(request)


@router.post("/sign-in", response_class=HTMLResponse)
async def sign_in(request: Request) -> Response:
    form = await request.form(max_files=0, max_fields=10)
    await request.close()
    try:
        sessions.check_origin(request)
    except sessions.ForgedRequest as exc:
        return _sign_in_page(request, 403, str(exc))
    nonce = request.cookies.get(sessions.SIGN_IN_COOKIE, "")
    if not nonce or text_of(form, "nonce") != nonce:
        return _sign_in_page(request, 403, "The sign-in form expired or came from elsewhere: try again.")
    key_id, secret = text_of(form, "access_key_id"), text_of(form, "secret_access_key")
    try:
        principal, token = await blocking(lambda: sessions.sign_in(request, key_id, secret))
    except AuthError as exc:
        return _sign_in_page(request, 401, exc.message[:1].upper() + exc.message[1:] + ".")
    except Throttled:
        return _sign_in_page(request, 429, "Too many failed sign-ins: wait a minute and try again.")
    except KeeneyeError as exc:
        return _sign_in_page(request, 503, exc.message)
    viewer = sessions.Viewer(principal, token, request.app.state.api)
    await blocking(lambda: viewer.audit("ConsoleSignIn", {"client": client_address(request)}))
    response = see_other("/collections")
    response.set_cookie(
        sessions.COOKIE,
        token,
        max_age=int(request.app.state.api.settings.server.console_session_s),
        path=sessions.PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    response.delete_cookie(sessions.SIGN_IN_COOKIE, path=sessions.PATH)
    return response


@router.post("/sign-out", response_class=HTMLResponse)
async def sign_out(request: Request) -> Response:
    async def act(request: Request, viewer: sessions.Viewer) -> Response:
        await form_of(request, viewer)
        await blocking(lambda: sessions.sign_out(viewer))
        await blocking(lambda: viewer.audit("ConsoleSignOut", {}))
        response = see_other("/sign-in")
        response.delete_cookie(sessions.COOKIE, path=sessions.PATH)
        return response

    return await guarded(request, act)


# -- collections and people ---------------------------------------------------------------------------


@router.get("/collections", response_class=HTMLResponse)
async def collections_page(request: Request) -> Response:
    async def page(request: Request, viewer: sessions.Viewer) -> Response:
        collections = _collections(request)
        action = "rekognition:ListCollections"
        if not viewer.can(action):  # as the AWS endpoint: allowed on some collection, then filtered
            viewer.require(action, collections.arn("*"), "list collections")
        listed = await blocking(lambda: collections.list_collections(1000).items)
        infos = [c for c in listed if viewer.can(action, c.arn)]
        return render(
            request,
            "collections.html",
            viewer,
            collections=infos,
            done=request.query_params.get("done"),
            can_create=viewer.can("rekognition:CreateCollection"),
        )

    return await guarded(request, page)


@router.post("/collections", response_class=HTMLResponse)
async def create_collection(request: Request) -> Response:
    async def act(request: Request, viewer: sessions.Viewer) -> Response:
        form = await form_of(request, viewer)
        collections = _collections(request)
        collection_id = text_of(form, "collection_id")
        key = _key(collection_id)
        viewer.require("rekognition:CreateCollection", collections.arn(key), "create collection")
        await blocking(lambda: collections.create_collection(key))
        days = text_of(form, "retention_days")
        if days:
            viewer.require("keeneye:SetCollectionRetention", collections.arn(key), "set retention")
            await blocking(lambda: collections.set_retention(key, _days(days)))
        viewer.audit("CreateCollection", {"retention_days": days or None, "via": "console"}, key)
        return see_other(f"/collections/{collection_id}")

    return await guarded(request, act)


def _days(text: str) -> int | None:
    if not text:
        return None
    try:
        days = int(text)
    except ValueError:
        raise InvalidParameter(
            "retention must be a whole number of days (or empty: keep until deleted)"
        ) from None
    if not 1 <= days <= 36500:
        raise InvalidParameter("retention must be between 1 and 36500 days")
    return days


@router.post("/collections/{collection_id}/retention", response_class=HTMLResponse)
async def set_retention(request: Request, collection_id: str) -> Response:
    async def act(request: Request, viewer: sessions.Viewer) -> Response:
        form = await form_of(request, viewer)
        collections = _collections(request)
        key = _key(collection_id)
        viewer.require("keeneye:SetCollectionRetention", collections.arn(key), "set retention")
        days = _days(text_of(form, "retention_days"))
        await blocking(lambda: collections.set_retention(key, days))
        viewer.audit("SetCollectionRetention", {"days": days, "via": "console"}, key)
        return see_other(f"/collections/{collection_id}?done=retention")

    return await guarded(request, act)


@router.post("/collections/{collection_id}/review-required", response_class=HTMLResponse)
async def set_review_required(request: Request, collection_id: str) -> Response:
    async def act(request: Request, viewer: sessions.Viewer) -> Response:
        form = await form_of(request, viewer)
        collections = _collections(request)
        key = _key(collection_id)
        viewer.require(SET_REVIEW_REQUIRED, collections.arn(key), "require review")
        required = text_of(form, "review_required") == "on"
        await blocking(lambda: collections.set_review_required(key, required))
        viewer.audit("SetCollectionReviewRequired", {"required": required, "via": "console"}, key)
        return see_other(f"/collections/{collection_id}?done=review")

    return await guarded(request, act)


@router.post("/collections/{collection_id}/delete", response_class=HTMLResponse)
async def delete_collection(request: Request, collection_id: str) -> Response:
    async def act(request: Request, viewer: sessions.Viewer) -> Response:
        await form_of(request, viewer)
        collections = _collections(request)
        key = _key(collection_id)
        viewer.require("rekognition:DeleteCollection", collections.arn(key), "delete collection")
        await blocking(lambda: collections.delete_collection(key))
        viewer.audit("DeleteCollection", {"via": "console"}, key)
        return see_other("/collections?done=deleted")

    return await guarded(request, act)


async def _collection_page(
    request: Request, viewer: sessions.Viewer, collection_id: str, status: int = 200, **extra: Any
) -> Response:
    collections = _collections(request)
    key = _key(collection_id)
    arn = collections.arn(key)
    viewer.require("rekognition:DescribeCollection", arn, "describe collection")
    info = await blocking(lambda: collections.describe_collection(key))
    review_required = await blocking(lambda: collections.review_required(key))
    after = request.query_params.get("after") or None
    people, more = [], None
    if viewer.can("rekognition:ListUsers", arn):
        page = await blocking(lambda: collections.list_users(key, PEOPLE_PAGE, after))
        people, more = page.items, page.next_token
    rights = {
        "enrol": viewer.can("rekognition:IndexFaces", arn) and viewer.can("rekognition:AssociateFaces", arn),
        "search": viewer.can("rekognition:SearchUsersByImage", arn),
        "delete": viewer.can("rekognition:DeleteUser", arn) and viewer.can("rekognition:DeleteFaces", arn),
        "retention": viewer.can("keeneye:SetCollectionRetention", arn),
        "drop": viewer.can("rekognition:DeleteCollection", arn),
        "list": viewer.can("rekognition:ListUsers", arn),
        "review": viewer.can(SET_REVIEW_REQUIRED, arn),
    }
    return render(
        request,
        "collection.html",
        viewer,
        status,
        info=info,
        collection_id=collection_id,
        people=people,
        more=more,
        rights=rights,
        review_required=review_required,
        done=request.query_params.get("done"),
        **extra,
    )


@router.get("/collections/{collection_id}", response_class=HTMLResponse)
async def collection_page(request: Request, collection_id: str) -> Response:
    async def page(request: Request, viewer: sessions.Viewer) -> Response:
        return await _collection_page(request, viewer, collection_id)

    return await guarded(request, page)


async def _photos(form: FormData, name: str) -> list[Photo]:
    uploads = files_of(form, name)
    if not uploads:
        raise InvalidParameter("choose at least one photo")
    if len(uploads) > MAX_PHOTOS:
        raise InvalidParameter(f"at most {MAX_PHOTOS} photos at once")
    return [Photo(u.filename or f"photo-{n}", await u.read()) for n, u in enumerate(uploads)]


@router.post("/collections/{collection_id}/enrol", response_class=HTMLResponse)
async def enrol_person(request: Request, collection_id: str) -> Response:
    async def act(request: Request, viewer: sessions.Viewer) -> Response:
        state = viewer.state
        collections = _collections(request)
        key = _key(collection_id)
        arn = collections.arn(key)
        # The form is read (within the server's body limit) before the rights are checked, unlike the
        # API: the caller is a signed-in session, and a refusal sent before its body was read would
        # reach the browser as a reset connection (the server closes with unread bytes), not a page.
        form = await form_of(
            request, viewer, max_files=MAX_PHOTOS, max_bytes=state.settings.server.max_body_bytes
        )
        viewer.require("rekognition:IndexFaces", arn, "enrol")
        viewer.require("rekognition:AssociateFaces", arn, "enrol")
        user_id = text_of(form, "user_id")
        photos = await _photos(form, "photos")

        def run() -> Any:
            with analysing(state):
                return enrol(
                    collections,
                    key,
                    user_id,
                    photos,
                    quality_filter="AUTO",
                    before_create_user=lambda: viewer.require("rekognition:CreateUser", arn, "enrol"),
                )

        try:
            result = await blocking(run)
        except NothingEnrolled as exc:
            return await _collection_page(
                request, viewer, collection_id, 400, enrolled=None, outcomes=exc.photos, enrolled_user=user_id
            )
        viewer.audit(
            "EnrolUser",
            {
                "user_id": user_id,
                "face_ids": result.face_ids,
                "skipped": len(result.photos) - len(result.face_ids),
                "user_created": result.user_created,
                "via": "console",
            },
            key,
        )
        return await _collection_page(
            request, viewer, collection_id, enrolled=result, outcomes=result.photos, enrolled_user=user_id
        )

    return await guarded(request, act)


@router.post("/collections/{collection_id}/search", response_class=HTMLResponse)
async def search_by_photo(request: Request, collection_id: str) -> Response:
    async def act(request: Request, viewer: sessions.Viewer) -> Response:
        state = viewer.state
        collections = _collections(request)
        key = _key(collection_id)
        form = await form_of(request, viewer, max_files=1, max_bytes=state.settings.server.max_body_bytes)
        viewer.require("rekognition:SearchUsersByImage", collections.arn(key), "search")
        photos = await _photos(form, "search_photo")
        threshold = _threshold(text_of(form, "threshold", "80") or "80")

        def run() -> Any:
            with analysing(state):
                return collections.search_users_by_image(key, photos[0].data or b"", threshold, 10)

        _, matches = await blocking(run)
        viewer.audit(
            "SearchUsersByImage",
            {
                "matches": [
                    {"UserId": m.user.user_id, "Similarity": round(m.similarity, 2)} for m in matches
                ],
                "via": "console",
            },
            key,
        )
        return await _collection_page(
            request, viewer, collection_id, matches=matches, searched=photos[0].name, threshold=threshold
        )

    return await guarded(request, act)


def _threshold(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InvalidParameter("the threshold must be a number from 0 to 100") from None
    if not 0 <= value <= 100:
        raise InvalidParameter("the threshold must be a number from 0 to 100")
    return value


@router.get("/collections/{collection_id}/people/{user_id}", response_class=HTMLResponse)
async def person_page(request: Request, collection_id: str, user_id: str) -> Response:
    async def page(request: Request, viewer: sessions.Viewer) -> Response:
        collections = _collections(request)
        key = _key(collection_id)
        arn = collections.arn(key)
        viewer.require("rekognition:ListFaces", arn, "list a person's faces")
        count = await blocking(lambda: collections.user_face_count(key, user_id))
        if count is None:
            raise NotFound(f"no person {user_id} in collection {collection_id}")
        faces = await blocking(lambda: collections.list_faces(key, 100, None, user_id).items)
        return render(
            request,
            "person.html",
            viewer,
            collection_id=collection_id,
            user_id=user_id,
            faces=faces,
            can_delete=viewer.can("rekognition:DeleteUser", arn)
            and viewer.can("rekognition:DeleteFaces", arn),
        )

    return await guarded(request, page)


@router.post("/collections/{collection_id}/people/{user_id}/delete", response_class=HTMLResponse)
async def delete_person(request: Request, collection_id: str, user_id: str) -> Response:
    """A person is deleted with their faces: the console's user is the person, and a watchlist that
    forgets someone should keep none of their vectors (Rekognition's DeleteUser alone keeps the faces)."""

    async def act(request: Request, viewer: sessions.Viewer) -> Response:
        await form_of(request, viewer)
        collections = _collections(request)
        key = _key(collection_id)
        arn = collections.arn(key)
        viewer.require("rekognition:DeleteUser", arn, "delete a person")
        viewer.require("rekognition:DeleteFaces", arn, "delete a person")

        def run() -> list[str]:
            face_ids: list[str] = []
            token = None
            while True:
                page = collections.list_faces(key, 1000, token, user_id)
                face_ids += [f.face_id for f in page.items]
                token = page.next_token
                if token is None:
                    break
            collections.delete_user(key, user_id)
            for start in range(0, len(face_ids), 4096):
                collections.delete_faces(key, face_ids[start : start + 4096])
            return face_ids

        deleted = await blocking(run)
        viewer.audit("DeleteUser", {"user_id": user_id, "face_ids": deleted, "via": "console"}, key)
        return see_other(f"/collections/{collection_id}?done=person-deleted")

    return await guarded(request, act)


# -- the review queue --------------------------------------------------------------------------------


def _review(request: Request) -> Any:
    review = getattr(request.app.state.api.services, "review", None)
    if review is None:
        raise BackendUnavailable("the review queue is not available on this server (it has no database)")
    return review


@router.get("/review", response_class=HTMLResponse)
async def review_page(request: Request) -> Response:
    async def page(request: Request, viewer: sessions.Viewer) -> Response:
        review = _review(request)
        status = request.query_params.get("status", "PENDING")
        if status not in REVIEW_FILTERS:
            raise InvalidParameter("status must be PENDING, CONFIRMED, REJECTED, UNSURE or ALL")
        if not viewer.can(LIST_IDENTIFICATIONS):
            viewer.require(LIST_IDENTIFICATIONS, "*", "review queue")
        items = await blocking(lambda: review.list(status=None if status == "ALL" else status, limit=200))
        collections = request.app.state.api.services.collections
        visible = [
            i
            for i in items
            if i.collection_id is None
            or collections is None
            or viewer.can(LIST_IDENTIFICATIONS, collections.arn(i.collection_id))
        ]
        decidable = {
            i.identification_id
            for i in visible
            if i.collection_id is not None
            and collections is not None
            and viewer.can(REVIEW_IDENTIFICATION, collections.arn(i.collection_id))
        }
        counts = await blocking(review.counts)
        return render(
            request, "review.html", viewer, items=visible, decidable=decidable, status=status, counts=counts
        )

    return await guarded(request, page)


@router.post("/review/{identification_id}", response_class=HTMLResponse)
async def decide(request: Request, identification_id: str) -> Response:
    async def act(request: Request, viewer: sessions.Viewer) -> Response:
        form = await form_of(request, viewer)
        review = _review(request)
        decision = DECISIONS.get(text_of(form, "decision"))
        if decision is None:
            raise InvalidParameter("the decision must be confirm, reject or unsure")
        item = await blocking(lambda: review.get(identification_id))
        collections = _collections(request)
        resource = collections.arn(item.collection_id) if item.collection_id else "*"
        viewer.require(REVIEW_IDENTIFICATION, resource, "review")
        await blocking(lambda: review.decide(identification_id, decision, access_key=viewer.access_key_id))
        back = text_of(form, "status", "PENDING")
        return see_other(f"/review?status={back if back in REVIEW_FILTERS else 'PENDING'}")

    return await guarded(request, act)


@router.get("/identifications/{identification_id}/crop")
async def identification_crop(request: Request, identification_id: str) -> Response:
    async def get(request: Request, viewer: sessions.Viewer) -> Response:
        review = _review(request)
        item = await blocking(lambda: review.get(identification_id))
        collections = _collections(request)
        resource = collections.arn(item.collection_id) if item.collection_id else "*"
        viewer.require(LIST_IDENTIFICATIONS, resource, "face crop")
        crop = await blocking(lambda: review.crop(identification_id))
        if crop is None:
            raise NotFound("this identification kept no face crop")
        return Response(crop, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    return await guarded(request, get)


# -- the audit log ------------------------------------------------------------------------------------


def _when(text: str, what: str) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidParameter(
            f"{what} must be a date or time such as 2026-12-06 or 2026-12-06T10:00"
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@router.get("/audit", response_class=HTMLResponse)
async def audit_page(request: Request) -> Response:
    async def page(request: Request, viewer: sessions.Viewer) -> Response:
        viewer.require(READ_AUDIT, "*", "audit log")
        trail = request.app.state.api.services.audit
        if trail is None:
            raise BackendUnavailable("the audit log is not available on this server")
        q = request.query_params
        filters = {k: (q.get(k) or "").strip() for k in ("key", "operation", "collection", "since", "until")}
        after = q.get("after")
        try:
            after_id = int(after) if after else None
        except ValueError:
            raise InvalidParameter("after must be a record id") from None
        since, until = _when(filters["since"], "since"), _when(filters["until"], "until")
        rows = await blocking(
            lambda: trail.read(
                since,
                _key(filters["collection"]) if filters["collection"] else None,
                101,
                after=after_id,
                newest_first=True,
                access_key=filters["key"] or None,
                operation=filters["operation"] or None,
                until=until,
            )
        )
        more = rows[100]["id"] if len(rows) > 100 else None
        for row in rows:
            row["details_text"] = json.dumps(row.get("details") or {}, sort_keys=True)
        return render(request, "audit.html", viewer, rows=rows[:100], filters=filters, more=more, verify=None)

    return await guarded(request, page)


@router.post("/audit/verify", response_class=HTMLResponse)
async def verify_audit(request: Request) -> Response:
    async def act(request: Request, viewer: sessions.Viewer) -> Response:
        await form_of(request, viewer)
        viewer.require(READ_AUDIT, "*", "verify the audit log")
        trail = request.app.state.api.services.audit
        if trail is None:
            raise BackendUnavailable("the audit log is not available on this server")
        report = await blocking(trail.verify)
        rows = await blocking(lambda: trail.read(limit=100, newest_first=True))
        for row in rows:
            row["details_text"] = json.dumps(row.get("details") or {}, sort_keys=True)
        filters = dict.fromkeys(("key", "operation", "collection", "since", "until"), "")
        return render(
            request, "audit.html", viewer, rows=rows, filters=filters, more=None, verify=report.to_dict()
        )

    return await guarded(request, act)
