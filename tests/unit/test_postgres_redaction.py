"""What the local PostgreSQL's errors may say: never the role's password."""

from infra.local.postgres import redacted


def test_a_password_echoed_in_an_error_is_masked_everywhere():
    output = (
        "ERROR:  role \"x\" does not exist\nSTATEMENT:  ALTER ROLE x PASSWORD 'Zt9-secret'; -- Zt9-secret\n"
    )
    masked = redacted(output, "Zt9-secret")
    assert "Zt9-secret" not in masked
    assert masked.count("<password>") == 2 and "ALTER ROLE x PASSWORD '<password>'" in masked


def test_output_without_the_password_is_kept_as_it_is():
    output = "FATAL:  could not create shared memory segment\n"
    assert redacted(output, "Zt9-secret") == output
    assert redacted(output, "") == output  # no secret: nothing to mask, and no mask everywhere
