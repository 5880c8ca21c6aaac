"""DetectFaces and CompareFaces: images in, faces out (no collection)."""

from __future__ import annotations

from keeneye.aws import shapes
from keeneye.aws.handlers.context import DEFAULT_THRESHOLD, Context, Handler, Params, Response, audit


def detect_faces(ctx: Context, p: Params) -> Response:
    extras = shapes.requested_attributes(p.get("Attributes"))
    image = ctx.services.images.load(p.get("Image"))
    r = ctx.services.faces.detect_faces(image, extras)
    return {"FaceDetails": [shapes.face_detail(f, r.width, r.height, extras) for f in r.faces]}


def compare_faces(ctx: Context, p: Params) -> Response:
    threshold = float(p.get("SimilarityThreshold", DEFAULT_THRESHOLD))
    source = ctx.services.images.load(p.get("SourceImage"))
    target = ctx.services.images.load(p.get("TargetImage"))
    r = ctx.services.faces.compare_faces(source, target, threshold, p.get("QualityFilter", "NONE"))
    sw, sh, tw, th = r.source.width, r.source.height, r.target.width, r.target.height
    audit(
        ctx,
        "CompareFaces",
        None,
        faces_in_request=1,
        matches=[{"Similarity": float(sim)} for _, sim in r.matches],
        threshold=threshold,
    )
    return {
        "SourceImageFace": shapes.compared_source_face(r.source.faces[0], sw, sh),
        "FaceMatches": [{"Similarity": sim, "Face": shapes.compared_face(f, tw, th)} for f, sim in r.matches],
        "UnmatchedFaces": [shapes.compared_face(f, tw, th) for f in r.unmatched],
    }


FACE_OPERATIONS: dict[str, Handler] = {"DetectFaces": detect_faces, "CompareFaces": compare_faces}
