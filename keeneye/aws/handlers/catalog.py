"""Collections, the faces in them (IndexFaces, ListFaces, DeleteFaces, SearchFaces[ByImage]) and tags."""

from __future__ import annotations

from keeneye.aws import shapes
from keeneye.aws.handlers.context import (
    DEFAULT_THRESHOLD,
    Context,
    Handler,
    Params,
    Response,
    audit,
    face_hits,
    model_version,
    regional_collections,
    scoped,
)


def create_collection(ctx: Context, p: Params) -> Response:
    info = regional_collections(ctx).create_collection(p["CollectionId"], p.get("Tags"))
    return {
        "StatusCode": 200,
        "CollectionArn": info.arn,
        "FaceModelVersion": shapes.face_model_version(info.face_model_version),
    }


def describe_collection(ctx: Context, p: Params) -> Response:
    return shapes.collection_description(regional_collections(ctx).describe_collection(p["CollectionId"]))


def list_collections(ctx: Context, p: Params) -> Response:
    col = regional_collections(ctx)
    page = col.list_collections(p.get("MaxResults", 1000), p.get("NextToken"))
    # Only the collections the caller may list (a page may come back shorter than MaxResults).
    items = [c for c in page.items if ctx.authorize("rekognition:ListCollections", col.arn(c.collection_id))]
    out: Response = {
        "CollectionIds": [c.collection_id for c in items],
        "FaceModelVersions": [shapes.face_model_version(c.face_model_version) for c in items],
    }
    if page.next_token:
        out["NextToken"] = page.next_token
    return out


def delete_collection(ctx: Context, p: Params) -> Response:
    regional_collections(ctx).delete_collection(p["CollectionId"])
    audit(ctx, "DeleteCollection", scoped(ctx, p["CollectionId"]))
    return {"StatusCode": 200}


# -- faces in collections ---------------------------------------------------------------------------------


def index_faces(ctx: Context, p: Params) -> Response:
    extras = shapes.requested_attributes(p.get("DetectionAttributes"))
    image = ctx.services.images.load(p.get("Image"))
    r = regional_collections(ctx).index_faces(
        p["CollectionId"],
        image,
        external_image_id=p.get("ExternalImageId"),
        max_faces=p.get("MaxFaces"),
        quality_filter=p.get("QualityFilter", "AUTO"),
        attributes=extras,
    )
    w, h = r.image_width, r.image_height
    audit(
        ctx,
        "IndexFaces",
        scoped(ctx, p["CollectionId"]),
        faces_in_request=len(r.indexed) + len(r.unindexed),
        matches=[{"FaceId": stored.face_id} for stored, _ in r.indexed],
    )
    return {
        "FaceRecords": [
            {"Face": shapes.stored_face(stored), "FaceDetail": shapes.face_detail(face, w, h, extras)}
            for stored, face in r.indexed
        ],
        "FaceModelVersion": shapes.face_model_version(r.face_model_version),
        "UnindexedFaces": [
            {"Reasons": list(reasons), "FaceDetail": shapes.face_detail(face, w, h, extras)}
            for face, reasons in r.unindexed
        ],
    }


def list_faces(ctx: Context, p: Params) -> Response:
    page = regional_collections(ctx).list_faces(
        p["CollectionId"],
        max_results=p.get("MaxResults", 1000),
        next_token=p.get("NextToken"),
        user_id=p.get("UserId"),
        face_ids=p.get("FaceIds"),
    )
    out: Response = {
        "Faces": [shapes.stored_face(f) for f in page.items],
        "FaceModelVersion": model_version(ctx, p["CollectionId"]),
    }
    if page.next_token:
        out["NextToken"] = page.next_token
    return out


def delete_faces(ctx: Context, p: Params) -> Response:
    deleted, failed = regional_collections(ctx).delete_faces(p["CollectionId"], p["FaceIds"])
    audit(
        ctx,
        "DeleteFaces",
        scoped(ctx, p["CollectionId"]),
        faces_in_request=len(p["FaceIds"]),
        matches=[{"FaceId": f} for f in deleted],
    )
    return {
        "DeletedFaces": list(deleted),
        "UnsuccessfulFaceDeletions": [shapes.unsuccessful(u) for u in failed],
    }


def search_faces(ctx: Context, p: Params) -> Response:
    threshold = float(p.get("FaceMatchThreshold", DEFAULT_THRESHOLD))
    col = regional_collections(ctx)
    matches = col.search_faces(p["CollectionId"], p["FaceId"], threshold, p.get("MaxFaces", 4096))
    audit(
        ctx,
        "SearchFaces",
        scoped(ctx, p["CollectionId"]),
        faces_in_request=1,
        matches=face_hits(matches),
        threshold=threshold,
    )
    return {
        "SearchedFaceId": p["FaceId"],
        "FaceMatches": [shapes.face_match(m) for m in matches],
        "FaceModelVersion": model_version(ctx, p["CollectionId"]),
    }


def search_faces_by_image(ctx: Context, p: Params) -> Response:
    threshold = float(p.get("FaceMatchThreshold", DEFAULT_THRESHOLD))
    image = ctx.services.images.load(p.get("Image"))
    r = regional_collections(ctx).search_faces_by_image(
        p["CollectionId"],
        image,
        threshold=threshold,
        max_faces=p.get("MaxFaces", 4096),
        quality_filter=p.get("QualityFilter", "NONE"),
    )
    audit(
        ctx,
        "SearchFacesByImage",
        scoped(ctx, p["CollectionId"]),
        faces_in_request=1 + len(r.unsearched),
        matches=face_hits(r.matches),
        threshold=threshold,
    )
    return {
        "SearchedFaceBoundingBox": shapes.bounding_box(r.searched, r.image_width, r.image_height),
        "SearchedFaceConfidence": shapes.confidence(r.searched),
        "FaceMatches": [shapes.face_match(m) for m in r.matches],
        "FaceModelVersion": shapes.face_model_version(r.face_model_version),
    }


# -- tags ---------------------------------------------------------------------------------------------


def tag_resource(ctx: Context, p: Params) -> Response:
    regional_collections(ctx).tag_resource(p["ResourceArn"], p["Tags"])
    return {}


def untag_resource(ctx: Context, p: Params) -> Response:
    regional_collections(ctx).untag_resource(p["ResourceArn"], p["TagKeys"])
    return {}


def list_tags_for_resource(ctx: Context, p: Params) -> Response:
    return {"Tags": dict(regional_collections(ctx).list_tags(p["ResourceArn"]))}


CATALOG_OPERATIONS: dict[str, Handler] = {
    "CreateCollection": create_collection,
    "DescribeCollection": describe_collection,
    "ListCollections": list_collections,
    "DeleteCollection": delete_collection,
    "IndexFaces": index_faces,
    "ListFaces": list_faces,
    "DeleteFaces": delete_faces,
    "SearchFaces": search_faces,
    "SearchFacesByImage": search_faces_by_image,
}

TAG_OPERATIONS: dict[str, Handler] = {
    "TagResource": tag_resource,
    "UntagResource": untag_resource,
    "ListTagsForResource": list_tags_for_resource,
}
