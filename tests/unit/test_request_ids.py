"""Request ids: a well-formed id a client or proxy sends is kept; anything else is replaced, never echoed."""

from imagelake.api.request_ids import request_id_of


def test_a_well_formed_id_is_kept_and_anything_else_replaced():
    assert request_id_of([(b"x-request-id", b"trace-0001:abc")]) == "trace-0001:abc"
    for sent in (
        b"short",
        b"x" * 65,
        b"has space in it",
        b"new\nline-injected",
        b"<script>alert(1)</script>",
    ):
        replaced = request_id_of([(b"x-request-id", sent)])
        assert replaced != sent.decode("latin-1") and len(replaced) == 32 and replaced.isalnum()
    assert request_id_of([]) != request_id_of([])  # a new one per request
