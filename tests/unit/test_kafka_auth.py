import base64
import time
from urllib.parse import parse_qs, urlparse

import pytest

from imagelake.realtime.kafka import KafkaConnection, msk_iam_token
from imagelake.settings import SettingsError, load_settings


def test_local_clients_use_plaintext():
    config = KafkaConnection("127.0.0.1:9092").client_config()
    assert config["bootstrap.servers"] == "127.0.0.1:9092"
    assert "sasl.mechanism" not in config and "oauth_cb" not in config


def test_msk_iam_clients_sign_a_token_with_the_aws_credentials(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIMAGELAKETEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    config = KafkaConnection("b-1.example:9098", auth="msk-iam", region="eu-west-1").client_config()
    assert (config["security.protocol"], config["sasl.mechanism"]) == ("SASL_SSL", "OAUTHBEARER")
    token, expires = config["oauth_cb"]("")
    assert time.time() < expires < time.time() + 3600
    url = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    query = parse_qs(urlparse(url).query)
    assert urlparse(url).netloc == "kafka.eu-west-1.amazonaws.com"
    assert query["Action"] == ["kafka-cluster:Connect"]
    assert query["X-Amz-Credential"][0].startswith("AKIAIMAGELAKETEST/")
    assert msk_iam_token("eu-west-1")[0] != ""


def test_prod_defaults_to_msk_iam_and_bad_modes_are_refused():
    prod = {"IMAGELAKE_ENV": "prod", "IMAGELAKE_LAKE_URL": "s3://b/l", "IMAGELAKE_API_KEYS": "k:c"}
    assert load_settings(prod).kafka_auth == "msk-iam"
    assert load_settings({}).kafka_auth == "none"
    with pytest.raises(SettingsError, match="IMAGELAKE_KAFKA_AUTH"):
        load_settings({"IMAGELAKE_KAFKA_AUTH": "kerberos"})
