"""imagelake on AWS: a CDK app in Python (``python infra/aws/app.py``), see docs/deploy.md."""
