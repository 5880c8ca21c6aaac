"""FaceSearch asks the index for 64 faces first and for MaxFaces only when the 64th still passes the
threshold (keeneye/service/faces/search.py): the answers are those of one search with k = MaxFaces."""

from __future__ import annotations

from keeneye.service.faces.search import FIRST_SEARCH
from keeneye.store.db import Store
from tests.factories import fake_collections, noise_image


def test_more_matches_than_the_first_search_are_all_found(store: Store) -> None:
    fc = fake_collections(store)
    fc.create_collection("c")
    n = FIRST_SEARCH + 6
    for i in range(n):
        fc.index_faces("c", noise_image(i), quality_filter="NONE")
    everyone = fc.search_faces_by_image("c", noise_image(3), threshold=0, max_faces=100).matches
    assert len(everyone) == n  # past the first 64: the second, full search ran
    sims = [m.similarity for m in everyone]
    assert sims == sorted(sims, reverse=True)
    some = fc.search_faces_by_image("c", noise_image(3), threshold=0, max_faces=10).matches
    assert [m.face.face_id for m in some] == [m.face.face_id for m in everyone[:10]]
    high = fc.search_faces_by_image("c", noise_image(3), threshold=99, max_faces=100).matches
    assert len(high) == 1  # the 64th is below 99: the first search's answer is the whole answer
