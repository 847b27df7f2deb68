"""One CloudFormation stack per concern; :func:`infra.aws.app.build_app` wires them together."""
