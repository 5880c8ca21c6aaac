"""Users of a collection: CreateUser ... SearchUsersByImage (ClientRequestToken replayed where
Rekognition takes one)."""

from __future__ import annotations

from keeneye.aws import shapes
from keeneye.aws.errors import AwsError
from keeneye.aws.handlers.context import (
    DEFAULT_ASSOCIATE_THRESHOLD,
    DEFAULT_THRESHOLD,
    Context,
    Handler,
    Params,
    Response,
    audit,
    model_version,
    once,
    regional_collections,
    scoped,
    user_hits,
)
from keeneye.core.errors import AlreadyExists


def create_user(ctx: Context, p: Params) -> Response:
    def call() -> Response:
        try:
            regional_collections(ctx).create_user(p["CollectionId"], p["UserId"])
        except AlreadyExists as exc:  # Rekognition answers a duplicate user with ConflictException
            raise AwsError("ConflictException", exc.message) from None
        return {}

    return once(ctx, "CreateUser", p, call)


def delete_user(ctx: Context, p: Params) -> Response:
    def call() -> Response:
        regional_collections(ctx).delete_user(p["CollectionId"], p["UserId"])
        audit(ctx, "DeleteUser", scoped(ctx, p["CollectionId"]), matches=[{"UserId": p["UserId"]}])
        return {}

    return once(ctx, "DeleteUser", p, call)


def list_users(ctx: Context, p: Params) -> Response:
    page = regional_collections(ctx).list_users(
        p["CollectionId"], p.get("MaxResults", 500), p.get("NextToken")
    )
    out: Response = {"Users": [shapes.user(u) for u in page.items]}
    if page.next_token:
        out["NextToken"] = page.next_token
    return out


def associate_faces(ctx: Context, p: Params) -> Response:
    return once(ctx, "AssociateFaces", p, lambda: _associate_faces(ctx, p))


def _associate_faces(ctx: Context, p: Params) -> Response:
    ok, failed, status = regional_collections(ctx).associate_faces(
        p["CollectionId"],
        p["UserId"],
        p["FaceIds"],
        float(p.get("UserMatchThreshold", DEFAULT_ASSOCIATE_THRESHOLD)),
    )
    return {
        "AssociatedFaces": [{"FaceId": f} for f in ok],
        "UnsuccessfulFaceAssociations": [shapes.unsuccessful(u, with_confidence=True) for u in failed],
        "UserStatus": status,
    }


def disassociate_faces(ctx: Context, p: Params) -> Response:
    return once(ctx, "DisassociateFaces", p, lambda: _disassociate_faces(ctx, p))


def _disassociate_faces(ctx: Context, p: Params) -> Response:
    ok, failed, status = regional_collections(ctx).disassociate_faces(
        p["CollectionId"], p["UserId"], p["FaceIds"]
    )
    return {
        "DisassociatedFaces": [{"FaceId": f} for f in ok],
        "UnsuccessfulFaceDisassociations": [shapes.unsuccessful(u) for u in failed],
        "UserStatus": status,
    }


def search_users(ctx: Context, p: Params) -> Response:
    user_id, face_id = p.get("UserId"), p.get("FaceId")
    if (user_id is None) == (face_id is None):
        raise AwsError("InvalidParameterException", "give exactly one of UserId or FaceId")
    threshold = float(p.get("UserMatchThreshold", DEFAULT_THRESHOLD))
    matches = regional_collections(ctx).search_users(
        p["CollectionId"],
        user_id=user_id,
        face_id=face_id,
        threshold=threshold,
        max_users=p.get("MaxUsers", 5),
    )
    audit(
        ctx,
        "SearchUsers",
        scoped(ctx, p["CollectionId"]),
        faces_in_request=1,
        matches=user_hits(matches),
        threshold=threshold,
    )
    out: Response = {
        "UserMatches": [shapes.user_match(m) for m in matches],
        "FaceModelVersion": model_version(ctx, p["CollectionId"]),
    }
    if face_id is not None:
        out["SearchedFace"] = {"FaceId": face_id}
    else:
        out["SearchedUser"] = {"UserId": user_id}
    return out


def search_users_by_image(ctx: Context, p: Params) -> Response:
    threshold = float(p.get("UserMatchThreshold", DEFAULT_THRESHOLD))
    image = ctx.services.images.load(p.get("Image"))
    r, matches = regional_collections(ctx).search_users_by_image(
        p["CollectionId"],
        image,
        threshold=threshold,
        max_users=p.get("MaxUsers", 5),
        quality_filter=p.get("QualityFilter", "NONE"),
    )
    w, h = r.image_width, r.image_height
    audit(
        ctx,
        "SearchUsersByImage",
        scoped(ctx, p["CollectionId"]),
        faces_in_request=1 + len(r.unsearched),
        matches=user_hits(matches),
        threshold=threshold,
    )
    return {
        "UserMatches": [shapes.user_match(m) for m in matches],
        "FaceModelVersion": shapes.face_model_version(r.face_model_version),
        "SearchedFace": {"FaceDetail": shapes.face_detail(r.searched, w, h)},
        "UnsearchedFaces": [
            {"FaceDetails": shapes.face_detail(f, w, h), "Reasons": ["FACE_NOT_LARGEST"]}
            for f in r.unsearched
        ],
    }


USER_OPERATIONS: dict[str, Handler] = {
    "CreateUser": create_user,
    "DeleteUser": delete_user,
    "ListUsers": list_users,
    "AssociateFaces": associate_faces,
    "DisassociateFaces": disassociate_faces,
    "SearchUsers": search_users,
    "SearchUsersByImage": search_users_by_image,
}
