"""The catalog calls each workload makes are exactly the ones its role allows (issue 3)."""

from infra.aws.policy_check import role_logical_id


def dynamodb_actions(template: dict, role_name: str) -> set[str]:
    role = role_logical_id(template, role_name)
    actions: set[str] = set()
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::IAM::Policy" and {"Ref": role} in resource["Properties"]["Roles"]:
            for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
                listed = (
                    statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                )
                actions |= {a for a in listed if a.startswith("dynamodb:")}
    return actions


def test_the_api_writes_and_refuses_accepted_items_and_reads_them(built, template_json):
    # put_accepted and idempotency keys (PutItem), refuse (a conditional UpdateItem),
    # GET /v1/images/{id} and an Idempotency-Key's first outcome (GetItem); it never deletes
    assert dynamodb_actions(template_json["workloads"], built.config.role_name("api")) == {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
    }


def test_runs_can_write_outcomes(built, template_json):
    # record_outcome is a (conditional) UpdateItem; get_many a BatchGetItem
    granted = dynamodb_actions(template_json["workloads"], built.config.role_name("dagster"))
    assert {"dynamodb:UpdateItem", "dynamodb:GetItem", "dynamodb:BatchGetItem"} <= granted
