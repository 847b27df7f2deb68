"""Read a synthesized CloudFormation template and say what it grants on a bucket, and what is wrong.

The stacks spell every S3 ARN literally, so a grant is plain text here (an
``Fn::Join`` of literals, as CDK's own ``grant_*`` methods write, is read too;
S3 actions on anything else cannot be proven narrow and are violations). The
checks are deliberately strict: anything that is not an object action on
``<bucket>/<prefix>*`` or a prefix-conditioned ``s3:ListBucket`` counts as a
violation (wildcard actions or buckets, ``NotAction``/``NotResource``,
bucket-level actions, managed policies). Tests compare the grants of each role
with the prefixes the code needs, so a role widened beyond its prefixes, or a
bucket opened to the public, makes a test fail.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: Which object actions count as which kind of access (anything else is a violation).
OBJECT_ACTIONS: dict[str, str] = {
    "s3:GetObject": "read",
    "s3:PutObject": "write",
    "s3:AbortMultipartUpload": "write",
    "s3:DeleteObject": "delete",
}
ACCESS_KINDS = ("read", "write", "delete", "list")


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def resources_of_type(template: Mapping[str, Any], cfn_type: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template.get("Resources", {}).items() if v.get("Type") == cfn_type}


def role_logical_id(template: Mapping[str, Any], role_name: str) -> str:
    """The logical id of the ``AWS::IAM::Role`` named ``role_name``."""
    for logical_id, resource in resources_of_type(template, "AWS::IAM::Role").items():
        if resource.get("Properties", {}).get("RoleName") == role_name:
            return logical_id
    raise KeyError(f"no IAM role named {role_name!r} in the template")


@dataclass
class RolePolicies:
    statements: list[dict[str, Any]] = field(default_factory=list)
    managed_policy_arns: list[Any] = field(default_factory=list)


def role_policies(template: Mapping[str, Any], logical_id: str) -> RolePolicies:
    """Every statement attached to a role: its inline policies and the AWS::IAM::Policy resources naming it."""
    found = RolePolicies()
    role = template["Resources"][logical_id]["Properties"]
    for policy in role.get("Policies", []):
        found.statements += _as_list(policy["PolicyDocument"]["Statement"])
    found.managed_policy_arns += _as_list(role.get("ManagedPolicyArns"))
    for policy in resources_of_type(template, "AWS::IAM::Policy").values():
        props = policy["Properties"]
        if {"Ref": logical_id} in _as_list(props.get("Roles")):
            found.statements += _as_list(props["PolicyDocument"]["Statement"])
    for managed in resources_of_type(template, "AWS::IAM::ManagedPolicy").values():
        props = managed["Properties"]
        if {"Ref": logical_id} in _as_list(props.get("Roles")):
            found.statements += _as_list(props["PolicyDocument"]["Statement"])
    return found


@dataclass
class BucketGrants:
    """What a set of statements allows on one bucket: prefixes per access kind, and the violations."""

    grants: dict[str, set[str]] = field(default_factory=lambda: {k: set() for k in ACCESS_KINDS})
    violations: list[str] = field(default_factory=list)


#: Pseudo parameters with one value wherever imagelake deploys (the standard AWS partition).
_PSEUDO = {"AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}


def resolve_text(value: Any) -> str | None:
    """A literal string, or the text of an ``Fn::Join`` of literals and partition refs; else None."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and len(value) == 1:
        ((fn, arg),) = value.items()
        if fn == "Ref" and arg in _PSEUDO:
            return _PSEUDO[arg]
        if fn == "Fn::Join" and isinstance(arg, list) and len(arg) == 2:
            parts = [resolve_text(p) for p in _as_list(arg[1])]
            if all(p is not None for p in parts):
                return str(arg[0]).join(parts)  # type: ignore[arg-type]
    return None


def _could_be_s3(action: str) -> bool:
    return action == "*" or fnmatch.fnmatchcase("s3:GetObject", action) or action.lower().startswith("s3:")


def bucket_grants(statements: Iterable[Mapping[str, Any]], bucket_name: str) -> BucketGrants:
    """Allowed S3 access on ``bucket_name`` as ``{kind: {prefix}}``, with every broad grant reported."""
    out = BucketGrants()
    bucket = f"arn:aws:s3:::{bucket_name}"
    for index, st in enumerate(statements):
        sid = st.get("Sid", f"#{index}")
        if st.get("Effect") != "Allow":
            continue
        if "NotAction" in st or "NotResource" in st:
            out.violations.append(f"{sid}: NotAction/NotResource grants too much")
            continue
        actions = [a for a in _as_list(st.get("Action")) if isinstance(a, str)]
        s3_actions = [a for a in actions if _could_be_s3(a)]
        if not s3_actions:
            continue
        for raw in _as_list(st.get("Resource")):
            res = resolve_text(raw)
            if res is None:
                out.violations.append(
                    f"{sid}: {s3_actions} on an unresolvable resource {raw!r}: cannot prove its reach"
                )
                continue
            head, _, key = res.partition("/")
            if res == "*" or (head != bucket and fnmatch.fnmatchcase(bucket, head)):
                out.violations.append(f"{sid}: {s3_actions} on {res!r} reaches every object of {bucket_name}")
                continue
            if head != bucket:
                continue
            for action in s3_actions:
                if "*" in action or "?" in action:
                    out.violations.append(f"{sid}: wildcard action {action!r} on {res!r}")
                elif not key and "/" not in res:
                    _check_list(out, sid, action, st, bucket_name)
                elif action not in OBJECT_ACTIONS:
                    out.violations.append(f"{sid}: unexpected action {action!r} on {res!r}")
                elif not key.endswith("/*") or "*" in key[:-1] or "?" in key:
                    out.violations.append(f"{sid}: {action} on {res!r} is not limited to one prefix")
                else:
                    out.grants[OBJECT_ACTIONS[action]].add(key[:-1])
    return out


def _check_list(out: BucketGrants, sid: str, action: str, st: Mapping[str, Any], bucket_name: str) -> None:
    if action != "s3:ListBucket":
        out.violations.append(f"{sid}: bucket-level action {action!r} on {bucket_name}")
        return
    prefixes = _as_list(st.get("Condition", {}).get("StringLike", {}).get("s3:prefix"))
    if not prefixes:
        out.violations.append(f"{sid}: s3:ListBucket on {bucket_name} without an s3:prefix condition")
        return
    for prefix in prefixes:
        if not isinstance(prefix, str) or not prefix.endswith("/*") or "*" in prefix[:-1]:
            out.violations.append(f"{sid}: s3:ListBucket prefix {prefix!r} is not one folder")
        else:
            out.grants["list"].add(prefix[:-1])


def role_bucket_grants(template: Mapping[str, Any], role_name: str, bucket_name: str) -> BucketGrants:
    """:func:`bucket_grants` for one named role, with managed policies reported as violations."""
    policies = role_policies(template, role_logical_id(template, role_name))
    out = bucket_grants(policies.statements, bucket_name)
    for arn in policies.managed_policy_arns:
        out.violations.append(
            f"managed policy {arn!r} attached to {role_name}: its grants cannot be checked here"
        )
    return out


def _is_public_principal(principal: Any) -> bool:
    if principal == "*":
        return True
    if isinstance(principal, Mapping):
        return any(v == "*" or (isinstance(v, list) and "*" in v) for v in principal.values())
    return False


def bucket_exposure(template: Mapping[str, Any], bucket_name: str) -> list[str]:
    """Everything that would make the bucket named ``bucket_name`` less than private, encrypted and TLS-only."""
    problems: list[str] = []
    matches = {
        k: v
        for k, v in resources_of_type(template, "AWS::S3::Bucket").items()
        if v.get("Properties", {}).get("BucketName") == bucket_name
    }
    if len(matches) != 1:
        return [f"expected one bucket named {bucket_name}, found {len(matches)}"]
    logical_id, bucket = next(iter(matches.items()))
    props = bucket.get("Properties", {})
    block = props.get("PublicAccessBlockConfiguration", {})
    for flag in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"):
        if block.get(flag) is not True:
            problems.append(f"public access block {flag} is not on")
    if props.get("AccessControl", "Private") not in ("Private", "BucketOwnerFullControl"):
        problems.append(f"canned ACL {props['AccessControl']!r}")
    if "WebsiteConfiguration" in props:
        problems.append("static website hosting is configured")
    rules = props.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", [])
    algorithms = {r.get("ServerSideEncryptionByDefault", {}).get("SSEAlgorithm") for r in rules}
    if algorithms != {"aws:kms"}:
        problems.append(f"default encryption is not SSE-KMS: {sorted(map(str, algorithms))}")
    if props.get("VersioningConfiguration", {}).get("Status") != "Enabled":
        problems.append("versioning is not enabled")

    tls_only = False
    for policy in resources_of_type(template, "AWS::S3::BucketPolicy").values():
        if policy["Properties"].get("Bucket") != {"Ref": logical_id}:
            continue
        for st in _as_list(policy["Properties"]["PolicyDocument"]["Statement"]):
            if st.get("Effect") == "Allow" and _is_public_principal(st.get("Principal")):
                problems.append(f"bucket policy allows {st.get('Action')} to everyone")
            secure = st.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport")
            if (
                st.get("Effect") == "Deny"
                and secure in ("false", False)
                and _is_public_principal(st.get("Principal"))
            ):
                tls_only = True
    if not tls_only:
        problems.append("no bucket policy denies requests without TLS (aws:SecureTransport)")
    return problems
